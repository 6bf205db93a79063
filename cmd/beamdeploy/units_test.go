package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
	"github.com/beamdeploy/beamdeploy/internal/config"
)

var update = flag.Bool("update", false, "rewrite packaging/systemd from the generator")

// fixtureConfig is what `beamdeploy init hello --listen 127.0.0.1:8080
// --listen [::1]:8080 --exec bin/hello` writes.
func fixtureConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := initConfig(initOptions{app: "hello", listen: []string{"127.0.0.1:8080", "[::1]:8080"}, exec: "bin/hello",
		readyTimeout: config.DefaultReadyTimeout, drainTimeout: config.DefaultDrainTimeout, settle: config.DefaultSettle})
	require.NoError(t, err)
	return cfg
}

// The example configuration and units shipped in packaging/systemd are
// exactly what `beamdeploy init hello --listen 127.0.0.1:8080 --listen
// [::1]:8080 --exec bin/hello` writes for /usr/bin/beamdeploy.
func TestUnitFixturesMatchInit(t *testing.T) {
	cfg := fixtureConfig(t)
	cfgData, err := cfg.Marshal()
	require.NoError(t, err)
	files := map[string]string{
		"hello.json":    string(cfgData),
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
	cfg := fixtureConfig(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.socket"), []byte(socketUnit(cfg)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.service"), []byte(serviceUnit(cfg, exe)), 0o644))
	out, err := exec.Command("systemd-analyze", "verify", "--man=no",
		filepath.Join(dir, "hello.socket"), filepath.Join(dir, "hello.service")).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Empty(t, string(out))
}
