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
