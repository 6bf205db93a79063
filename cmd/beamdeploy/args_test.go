package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
)

func TestReorderArgs(t *testing.T) {
	app := newApp(&globals{})
	tests := []struct{ in, want []string }{
		{[]string{"bd", "init", "hello", "--listen", "a", "--exec", "b c"}, []string{"bd", "init", "--listen", "a", "--exec", "b c", "hello"}},
		{[]string{"bd", "--json", "status", "hello"}, []string{"bd", "--json", "status", "hello"}},
		{[]string{"bd", "upgrade", "hello", "x.tar.gz", "--force"}, []string{"bd", "upgrade", "--force", "hello", "x.tar.gz"}},
		{[]string{"bd", "exec", "hello", "--", "bin/x", "--flag"}, []string{"bd", "exec", "hello", "--", "bin/x", "--flag"}},
		{[]string{"bd", "exec", "hello", "--x", "--", "bin/x"}, []string{"bd", "exec", "--x", "hello", "--", "bin/x"}},
		{[]string{"bd"}, []string{"bd"}},
		// Flags between positional arguments; a flag's value stays with it.
		{[]string{"bd", "upgrade", "hello", "--force", "dist/x.tar.gz"}, []string{"bd", "upgrade", "--force", "hello", "dist/x.tar.gz"}},
		{[]string{"bd", "upgrade", "hello", "--timeout", "5s", "x.tar.gz"}, []string{"bd", "upgrade", "--timeout", "5s", "hello", "x.tar.gz"}},
		{[]string{"bd", "upgrade", "hello", "--timeout=5s", "x.tar.gz"}, []string{"bd", "upgrade", "--timeout=5s", "hello", "x.tar.gz"}},
		// A global flag after the command moves before it.
		{[]string{"bd", "status", "hello", "--json"}, []string{"bd", "--json", "status", "hello"}},
		{[]string{"bd", "--log-level", "debug", "status", "hello"}, []string{"bd", "--log-level", "debug", "status", "hello"}},
		// "-" is an argument (stdin), not a flag.
		{[]string{"bd", "handoff", "hello", "put", "k", "-"}, []string{"bd", "handoff", "hello", "put", "k", "-"}},
		{[]string{"bd", "handoff", "hello", "put", "k", "-", "--json"}, []string{"bd", "--json", "handoff", "hello", "put", "k", "-"}},
		// Unknown flags and commands are left for the parser to refuse.
		{[]string{"bd", "status", "hello", "--nope"}, []string{"bd", "status", "--nope", "hello"}},
		{[]string{"bd", "nosuch", "--json"}, []string{"bd", "nosuch", "--json"}},
		// A flag without its value is left for the parser to refuse: no
		// positional argument is taken for its value.
		{[]string{"bd", "upgrade", "hello", "x.tar.gz", "--version"}, []string{"bd", "upgrade", "--version"}},
		{[]string{"bd", "upgrade", "--force", "hello", "x.tar.gz", "--json", "--version"}, []string{"bd", "--json", "upgrade", "--force", "--version"}},
		{[]string{"bd", "--log-level"}, []string{"bd", "--log-level"}},
		{[]string{"bd", "--log-level", "--json", "status"}, []string{"bd", "--log-level", "--json", "status"}},
		// --help anywhere: the command's help.
		{[]string{"bd", "upgrade", "hello", "x.tar.gz", "--help"}, []string{"bd", "upgrade", "--help"}},
		{[]string{"bd", "--json", "status", "hello", "-h", "--bogus"}, []string{"bd", "--json", "status", "--help"}},
		{[]string{"bd", "upgrade", "hello", "-m", "--help", "x.tar.gz"}, []string{"bd", "upgrade", "-m", "--help", "hello", "x.tar.gz"}}, // a value
		{[]string{"bd", "exec", "hello", "--", "bin/x", "--help"}, []string{"bd", "exec", "hello", "--", "bin/x", "--help"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, reorderArgs(app, tt.in))
	}
}

// Every command's --help has examples and the exit status section.
func TestHelpHasExamplesAndExitStatus(t *testing.T) {
	for _, c := range newApp(&globals{}).Commands {
		if c.Hidden || c.Name == "help" {
			continue
		}
		assert.Contains(t, c.Description, "EXAMPLES:", c.Name)
		assert.Contains(t, c.Description, "EXIT STATUS:", c.Name)
	}
}

// Quick calls and swaps read different timeout variables: exporting a
// short one for status must never make an upgrade give up.
func TestTimeoutEnvironmentByKind(t *testing.T) {
	calls := map[string]bool{"status": true, "releases": true, "handoff": true, "list": true, "history": true, "lock": true, "unlock": true}
	seen := 0
	for _, c := range newApp(&globals{}).Commands {
		f := lookupFlag(c.Flags, "--timeout")
		if f == nil {
			continue
		}
		seen++
		want := envSwapTimeout
		if calls[c.Name] {
			want = envCallTimeout
		}
		assert.Equal(t, []string{want}, f.(*cli.DurationFlag).EnvVars, c.Name)
	}
	assert.GreaterOrEqual(t, seen, 6)
}

// An app that was never set up is named as such, with the command that
// sets it up, before anything is dialled; a set-up app whose parent does
// not run says how to start it, without Go's HTTP internals.
func TestUnknownAppAndStoppedParent(t *testing.T) {
	dir := t.TempDir()
	c := newTestCLI(config.Paths{Etc: dir, Run: dir})
	assert.Equal(t, exitFailure, c.run(t, "status", "nosuch"))
	assert.Contains(t, c.errOut.String(), "no app named nosuch on this host")
	assert.Contains(t, c.errOut.String(), "beamdeploy init nosuch")

	require.NoError(t, os.WriteFile(c.paths.Config("hello"), []byte("{}"), 0o644))
	assert.Equal(t, control.ExitNotRunning, c.run(t, "status", "hello"))
	assert.Contains(t, c.errOut.String(), "does not exist; start it with: systemctl start hello.service")
	assert.NotContains(t, c.errOut.String(), "http://")
}

// init refuses values that make no sense, and a host without a running
// systemd, before it writes anything (so that a retry needs no --force).
func TestInitChecksBeforeWriting(t *testing.T) {
	for _, args := range [][]string{
		{"--ready-timeout", "0s"},
		{"--drain-timeout", "0s"},
		{"--settle", "-1s"},
	} {
		dir := t.TempDir()
		c := newTestCLI(config.Paths{Etc: dir, Units: dir, State: dir, Run: dir})
		code := c.run(t, append([]string{"init", "hello", "--listen", "8080", "--exec", "bin/hello", "--no-start"}, args...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, c.errOut.String())
		assert.Contains(t, c.errOut.String(), args[0])
		entries, _ := os.ReadDir(dir)
		assert.Empty(t, entries, "%v: nothing written", args)
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs here: the no-systemd case is for hosts and CI machines without it")
	}
	dir := t.TempDir()
	c := newTestCLI(config.Paths{Etc: dir, Units: dir, State: dir, Run: dir})
	assert.Equal(t, exitFailure, c.run(t, "init", "hello", "--listen", "8080", "--exec", "bin/hello", "--user", "root"))
	assert.Contains(t, c.errOut.String(), "systemd is not running on this host")
	assert.Contains(t, c.errOut.String(), "--no-start")
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "nothing written")
}

func TestUploadName(t *testing.T) {
	tests := []struct{ path, version, want, err string }{
		{"dist/hello-1.2.0.tar.gz", "", "hello-1.2.0.tar.gz", ""},
		{"dist/app.tar.gz", "1.2.3", "app.tar.gz", ""},
		{"dist/hello-1.2.0.tar.gz", "2.0.0", "hello-1.2.0.tar.gz", ""}, // --version wins, in the parent
		{"-", "v1.0.0+build.7", "hello.tar.gz", ""},
		{"dist/app.tar.gz", "", "", "pass --version VERSION"},
		{"-", "", "", "needs --version VERSION"},
		{"-", "../x", "", "version \"../x\""},
		{"-", "-1", "", "version \"-1\""},
		{"dist/app.zip", "1.0.0", "", "want NAME.tar.gz"},
	}
	for _, tt := range tests {
		got, err := uploadName("hello", tt.path, tt.version)
		if tt.err != "" {
			var ue *usageError
			require.ErrorAs(t, err, &ue, "%+v", tt)
			assert.Contains(t, err.Error(), tt.err)
			continue
		}
		require.NoError(t, err, "%+v", tt)
		assert.Equal(t, tt.want, got)
	}
}
