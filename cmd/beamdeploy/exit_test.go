package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
)

func TestExitCodeOfParentErrors(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{&control.Error{Code: control.CodeRolledBack}, control.ExitRolledBack},
		{fmt.Errorf("stage: %w", &control.Error{Code: control.CodeReleaseInUse}), control.ExitReleaseInUse},
		{&control.Error{Code: control.CodeInvalidRelease}, exitFailure},
		{fmt.Errorf("upgrade: %w", control.ErrNotRunning), control.ExitNotRunning},
		{context.Canceled, exitInterrupted},
		{usageErrorf("unknown command %q", "x"), exitUsage},
		{errors.New("other"), exitFailure},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, exitCode(tt.err), "%v", tt.err)
	}
}

func TestCheckHookUser(t *testing.T) {
	hooks := config.Hooks{AfterCutover: []string{"/bin/true"}}
	assert.Empty(t, checkHookUser(config.Config{User: "bdtest-nosuchuser"}), "no hooks, nothing to run")
	assert.Empty(t, checkHookUser(config.Config{User: config.DynamicUser, Hooks: hooks}))
	assert.Empty(t, checkHookUser(config.Config{User: "nobody", Hooks: hooks}))
	assert.Contains(t, checkHookUser(config.Config{User: "bdtest-nosuchuser", Hooks: hooks}), "hooks run as bdtest-nosuchuser")
	hooks.User = "bdtest-nosuchuser"
	assert.Contains(t, checkHookUser(config.Config{Hooks: hooks}), "create the user")
}
