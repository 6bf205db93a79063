package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadRoundTrip(t *testing.T) {
	c := config.Config{App: "hello", Listen: []string{"127.0.0.1:8080"}, Exec: []string{"bin/hello", "-v"}, DrainTimeout: config.Duration(5 * time.Second)}
	b, err := c.Marshal()
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "hello.json")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	got, err := config.Load(p)
	require.NoError(t, err)
	assert.Equal(t, c, got)
	assert.Equal(t, 5*time.Second, got.Drain())
	assert.Equal(t, config.DefaultReadyTimeout, got.Ready())
}

func TestLoadErrorsNameTheLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.json")
	require.NoError(t, os.WriteFile(p, []byte("{\n  \"app\": \"x\",\n  \"exce\": [\"a\"]\n}\n"), 0o644))
	_, err := config.Load(p)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Contains(t, err.Error(), p+":3")
}

func TestValidateApp(t *testing.T) {
	for name, ok := range map[string]bool{"hello": true, "my-app.v2": true, "": false, "Hello": false, "a@b": false, "../x": false, "-x": false} {
		err := config.ValidateApp(name)
		if ok {
			assert.NoError(t, err, name)
		} else {
			assert.ErrorIs(t, err, config.ErrInvalid, name)
		}
	}
}

func TestHookUser(t *testing.T) {
	tests := []struct {
		user, hooks, want string
	}{
		{"", "", "root"},
		{"root", "", "root"},
		{config.DynamicUser, "", config.DynamicUser},
		{"www-data", "", "www-data"},
		{config.DynamicUser, "root", "root"},
		{"", "deploy", "deploy"},
	}
	for _, tt := range tests {
		c := config.Config{User: tt.user, Hooks: config.Hooks{User: tt.hooks}}
		assert.Equal(t, tt.want, c.HookUser(), "user %q, hooks.user %q", tt.user, tt.hooks)
	}
}

func TestValidateHookUser(t *testing.T) {
	base := config.Config{App: "hello", Exec: []string{"bin/hello"}}
	for u, ok := range map[string]bool{"": true, "root": true, "deploy": true, "_svc-1": true,
		config.DynamicUser: false, "Root": false, "a b": false, "../x": false, "1abc": false} {
		c := base
		c.Hooks.User = u
		if err := c.Validate(); ok {
			assert.NoError(t, err, u)
		} else {
			assert.ErrorIs(t, err, config.ErrInvalid, u)
			assert.Contains(t, err.Error(), "hooks.user", u)
		}
	}
}
