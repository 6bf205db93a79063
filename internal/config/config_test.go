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

// Every kind of mistake is reported at its own line and column, in words
// an operator editing the file understands.
func TestLoadErrorsNameLineAndColumn(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"trailing comma", "{\n  \"app\": \"x\",\n  \"exec\": [\"bin/x\"],\n}\n", "x.json:4:1: invalid character '}'"},
		{"type error", "{\n  \"app\": \"x\",\n  \"exec\": [\"bin/x\"],\n  \"keep_releases\": \"5\"\n}\n", "x.json:4:20: \"keep_releases\" must be a whole number, not a JSON string"},
		{"list expected", "{\n  \"app\": \"x\",\n  \"exec\": \"bin/x\"\n}\n", "x.json:3:11: \"exec\" must be a list, not a JSON string"},
		{"unknown field", "{\n  \"app\": \"x\",\n    \"exce\": [\"a\"]\n}\n", "x.json:3:5: unknown field \"exce\""},
		{"truncated", "{\n  \"app\": \"x\",\n", "the file ends before the JSON object does"},
		{"text after", "{\"app\": \"x\", \"exec\": [\"bin/x\"]}\n{}\n", "x.json:2:1: unexpected text after the closing }"},
		{"other app", "{\"app\": \"y\", \"exec\": [\"bin/y\"]}\n", "\"app\" is \"y\" but the file is for \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.json")
			require.NoError(t, os.WriteFile(p, []byte(tt.text), 0o644))
			_, err := config.Load(p)
			require.ErrorIs(t, err, config.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
		})
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
