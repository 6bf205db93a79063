package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

func TestExitCodeOfParentErrors(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{&control.Error{Code: control.CodeRolledBack}, exitRolledBack},
		{&control.Error{Code: control.CodeSwapInProgress}, exitSwapInProgress},
		{fmt.Errorf("stage: %w", &control.Error{Code: control.CodeReleaseInUse}), exitReleaseInUse},
		{&control.Error{Code: control.CodeInvalidRelease}, exitFailure},
		{context.Canceled, exitInterrupted},
		{errors.New("other"), exitFailure},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, exitCode(tt.err), "%v", tt.err)
	}
}
