package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
)

func TestInitRunsInstancesAsADynamicUserByDefault(t *testing.T) {
	for user, want := range map[string]string{"": config.DynamicUser, config.DynamicUser: config.DynamicUser, "root": "root", "www-data": "www-data"} {
		cfg, err := initConfig(initOptions{app: "hello", listen: []string{"8080"}, exec: "bin/hello", user: user, settle: config.DefaultSettle,
			readyTimeout: config.DefaultReadyTimeout, drainTimeout: config.DefaultDrainTimeout})
		require.NoError(t, err)
		assert.Equal(t, want, cfg.User, "--user %q", user)
	}
}

func TestCheckUser(t *testing.T) {
	p := config.Paths{Etc: "/etc/beamdeploy"}
	tests := []struct {
		name               string
		user               string
		problem            string
		warning, alsoWarns string
	}{
		{"a config from before dynamic users: root, with how to change it", "",
			"", `/etc/beamdeploy/hello.json has no "user": instances of hello run as root`, `set "user": "dynamic" in /etc/beamdeploy/hello.json, run systemctl restart hello (the parent reloads its config; the app keeps running) and beamdeploy reload hello`},
		{"root on purpose", "root",
			"", `run as root ("user": "root"), so whoever may deploy (root and group beamdeploy) runs code as root`, "$STATE_DIRECTORY, /var/lib/beamdeploy/hello/data"},
		{"dynamic", config.DynamicUser, "", "", ""},
		{"a static user", "daemon", "", "", ""},
		{"a static user that does not exist", "bdtest-no-such-user", `"user": bdtest-no-such-user: user: unknown user bdtest-no-such-user`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, warnings := checkUser(p, config.Config{App: "hello", User: tt.user})
			if tt.problem == "" {
				assert.Empty(t, problems)
			} else {
				require.Len(t, problems, 1)
				assert.Contains(t, problems[0], tt.problem)
			}
			if tt.warning == "" {
				assert.Empty(t, warnings)
				return
			}
			require.Len(t, warnings, 1)
			assert.Contains(t, warnings[0], tt.warning)
			assert.Contains(t, warnings[0], tt.alsoWarns)
		})
	}
}

// A static user named like the dynamic one would take its place: init
// refuses and check warns. Users in the dynamic range are the dynamic
// user itself.
func TestStaticUserClash(t *testing.T) {
	err := staticUserClash("daemon") // uid 1 on Debian
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a static user daemon (uid 1) exists")
	assert.Contains(t, err.Error(), "--user daemon")
	assert.NoError(t, staticUserClash("bd-no-such-app-here"))
}

func TestCheckWarnsAboutWritableReleases(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "1.0.0", "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "1.0.0", "bin", "app"), nil, 0o755))
	require.NoError(t, os.Symlink("/tmp", filepath.Join(dir, "1.0.0", "link"))) // 0777, but a link
	assert.Empty(t, writableReleases(dir))
	assert.Empty(t, writableReleases(filepath.Join(dir, "missing")))
	require.NoError(t, os.Chmod(filepath.Join(dir, "1.0.0", "bin"), 0o777))
	require.NoError(t, os.Chmod(filepath.Join(dir, "1.0.0", "bin", "app"), 0o775))
	w := writableReleases(dir)
	assert.Contains(t, w, "2 files or directories in "+dir+" are writable by group or others")
	assert.Contains(t, w, "chmod -R go-w "+dir)
}
