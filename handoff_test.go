package beamdeploy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// TestSDKErrorsFromParentCodes: what the parent reports reaches SDK users
// as the SDK's own errors, with the parent's message.
func TestSDKErrorsFromParentCodes(t *testing.T) {
	for code, want := range map[string]error{
		control.CodeNotFound:         ErrHandoffNotFound,
		control.CodeLimit:            ErrHandoffLimit,
		control.CodeBadRequest:       ErrInvalidKey,
		control.CodePermissionDenied: ErrPermissionDenied,
	} {
		msg := "the parent's words for " + code
		err := sdkError(fmt.Errorf("handoff get: %w", &control.Error{Code: code, Message: msg}))
		assert.ErrorIs(t, err, want, code)
		assert.Contains(t, err.Error(), msg)
		for _, other := range []error{ErrHandoffNotFound, ErrHandoffLimit, ErrInvalidKey, ErrPermissionDenied} {
			if other != want {
				assert.NotErrorIs(t, err, other, code)
			}
		}
	}
	assert.NoError(t, sdkError(nil))
	plain := errors.New("connection refused")
	assert.Equal(t, plain, sdkError(plain))
}
