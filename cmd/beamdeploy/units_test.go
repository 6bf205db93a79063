package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
	"github.com/beamdeploy/beamdeploy/internal/config"
)

var update = flag.Bool("update", false, "rewrite packaging/systemd from the generator")

func fixtureConfig() config.Config {
	return config.Config{App: "hello", Listen: []string{"127.0.0.1:8080", "[::1]:8080"}, Exec: []string{"bin/hello"},
		ReadyTimeout: config.Duration(60 * time.Second), DrainTimeout: config.Duration(30 * time.Second)}
}

// The example units shipped in packaging/systemd are exactly what
// `beamdeploy init hello --listen 127.0.0.1:8080 --listen [::1]:8080
// --exec bin/hello` writes for /usr/bin/beamdeploy.
func TestUnitFixturesMatchInit(t *testing.T) {
	cfg := fixtureConfig()
	files := map[string]string{
		"hello.socket":  socketUnit(cfg),
		"hello.service": serviceUnit(cfg, "/usr/bin/beamdeploy"),
	}
	for name, want := range files {
		p := filepath.Join("..", "..", "packaging", "systemd", name)
		if *update {
			require.NoError(t, os.WriteFile(p, []byte(want), 0o644))
		}
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, want, string(got), "%s is stale: go test ./cmd/beamdeploy -run Fixtures -update", p)
	}
}

// systemd itself accepts the units init writes.
func TestSystemdAnalyzeVerifyInitUnits(t *testing.T) {
	beamtest.RequireSystemd(t)
	dir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	cfg := fixtureConfig()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.socket"), []byte(socketUnit(cfg)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.service"), []byte(serviceUnit(cfg, exe)), 0o644))
	out, err := exec.Command("systemd-analyze", "verify", "--man=no",
		filepath.Join(dir, "hello.socket"), filepath.Join(dir, "hello.service")).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Empty(t, string(out))
}
