package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/config"
)

// testCLI is beamdeploy as main runs it, with output tests can read.
type testCLI struct {
	globals
	out, errOut bytes.Buffer
}

func newTestCLI(paths config.Paths) *testCLI {
	c := &testCLI{}
	c.globals = globals{stdin: strings.NewReader(""), stdout: &c.out, stderr: &c.errOut, paths: paths}
	return c
}

// run runs the command line args as main does and returns the exit code;
// out and errOut hold what this run printed.
func (c *testCLI) run(t *testing.T, args ...string) int {
	t.Helper()
	c.out.Reset()
	c.errOut.Reset()
	app := newApp(&c.globals)
	return c.exit(app.RunContext(t.Context(), reorderArgs(app, append([]string{"beamdeploy"}, args...))))
}

// parsers are the parse functions of every command that has options.
var parsers = map[string]func(*cli.Context) (any, error){
	"init": anyOf(parseInit), "upgrade": anyOf(parseUpload), "hot-upgrade": anyOf(parseUpload), "stage": anyOf(parseUpload),
	"reload": anyOf(parseReload), "rollback": anyOf(parseRollback), "wait": anyOf(parseWait), "status": anyOf(parseStatus),
	"list": anyOf(parseList), "releases": anyOf(parseOneApp), "history": anyOf(parseHistory), "lock": anyOf(parseLock),
	"unlock": anyOf(parseOneApp), "handoff": anyOf(parseHandoff), "logs": anyOf(parseLogs), "check": anyOf(parseOneApp),
	"remove": anyOf(parseRemove), "parent": anyOf(parseOneApp), "version": anyOf(parseNoArgs),
	"man": anyOf(parseDoc("", "config")), "completion": anyOf(parseDoc("bash", "zsh")),
}

func anyOf[O any](parse func(*cli.Context) (O, error)) func(*cli.Context) (any, error) {
	return func(c *cli.Context) (any, error) { return parse(c) }
}

// parseArgs runs args through the CLI as main does, up to the command's
// parse function: it returns the options the command would run with,
// whether --json was given, and the exit code.
func parseArgs(t *testing.T, args ...string) (opts any, isJSON bool, code int) {
	t.Helper()
	c := newTestCLI(config.Paths{})
	app := newApp(&c.globals)
	for _, cmd := range app.Commands {
		if parse, ok := parsers[cmd.Name]; ok {
			cmd.Action = func(ctx *cli.Context) (err error) {
				opts, err = parse(ctx)
				return err
			}
		}
	}
	code = c.exit(app.RunContext(t.Context(), reorderArgs(app, append([]string{"beamdeploy"}, args...))))
	if d, ok := opts.(docOptions); ok {
		d.app = nil // the app itself, not an option
		opts = d
	}
	return opts, c.json, code
}

// Every command has a row in parsers, and so in the table below (exec,
// another owner's, keeps its own parsing).
func TestEveryCommandHasAParser(t *testing.T) {
	for _, c := range newApp(&globals{}).Commands {
		if c.Name != "exec" {
			assert.Contains(t, parsers, c.Name)
		}
	}
}

// Each command's options, from flags before, between and after its
// arguments, "-" as an argument and --json before or after the command.
func TestParseOptions(t *testing.T) {
	app := appOptions{app: "hello"}
	call := func(d time.Duration) appOptions { return appOptions{app: "hello", timeout: d} }
	swap := swapOptions{appOptions: app}
	def := initOptions{app: "hello", listen: []string{"8080", "[::1]:8080"}, exec: "bin/hello --port 0", user: config.DynamicUser,
		readyTimeout: config.DefaultReadyTimeout, drainTimeout: config.DefaultDrainTimeout, settle: config.DefaultSettle}
	initRoot := def
	initRoot.user, initRoot.settle, initRoot.force, initRoot.noStart = "root", 0, true, true
	tests := []struct {
		name string
		args []string
		want any
		json bool
	}{
		{"init", []string{"init", "hello", "--listen", "8080", "--exec", "bin/hello --port 0", "--listen", "[::1]:8080"}, def, false},
		{"init, flags first", []string{"init", "--listen", "8080", "--listen=[::1]:8080", "--exec", "bin/hello --port 0", "hello"}, def, false},
		{"init, every flag", []string{"init", "--user", "root", "hello", "--listen", "8080", "--listen", "[::1]:8080", "--exec", "bin/hello --port 0",
			"--settle", "0s", "--force", "--no-start"}, initRoot, false},
		{"upgrade, a flag between the arguments", []string{"upgrade", "hello", "--force", "dist/hello-1.2.0.tar.gz"},
			uploadOptions{swapOptions: swap, tarball: "dist/hello-1.2.0.tar.gz", name: "hello-1.2.0.tar.gz", force: true}, false},
		{"upgrade, every flag", []string{"--json", "upgrade", "--timeout", "5m", "hello", "dist/app.tar.gz", "--version", "1.2.3", "--sha256", "ab12",
			"-m", "fix login", "--detach"},
			uploadOptions{swapOptions: swapOptions{appOptions: call(5 * time.Minute), message: "fix login", detach: true},
				tarball: "dist/app.tar.gz", name: "app.tar.gz", sha256: "ab12", version: "1.2.3"}, true},
		{"upgrade from stdin", []string{"upgrade", "hello", "-", "--version", "1.2.3"},
			uploadOptions{swapOptions: swap, tarball: "-", name: "hello.tar.gz", version: "1.2.3"}, false},
		{"hot-upgrade", []string{"hot-upgrade", "hello", "hello-1.2.4.tar.gz", "--json"},
			uploadOptions{swapOptions: swap, tarball: "hello-1.2.4.tar.gz", name: "hello-1.2.4.tar.gz", hot: true}, true},
		{"stage", []string{"stage", "--force", "hello", "hello-1.2.4.tar.gz", "--sha256=ab12"},
			uploadOptions{swapOptions: swap, tarball: "hello-1.2.4.tar.gz", name: "hello-1.2.4.tar.gz", sha256: "ab12", force: true}, false},
		{"reload", []string{"reload", "hello", "-m", "restart", "--detach"}, swapOptions{appOptions: app, message: "restart", detach: true}, false},
		{"rollback", []string{"rollback", "--to", "1.2.3", "hello", "--message", "leaks"},
			rollbackOptions{swapOptions: swapOptions{appOptions: app, message: "leaks"}, to: "1.2.3"}, false},
		{"wait", []string{"wait", "hello", "s-1", "--timeout", "1m"}, waitOptions{appOptions: call(time.Minute), swap: "s-1"}, false},
		{"wait for the running swap", []string{"wait", "hello"}, waitOptions{appOptions: app}, false},
		{"status, --json after", []string{"status", "hello", "--json"}, call(5 * time.Second), true},
		{"status, --json before", []string{"--json", "status", "hello", "--timeout=2s"}, call(2 * time.Second), true},
		{"status of every app", []string{"status"}, appOptions{timeout: 5 * time.Second}, false},
		{"list", []string{"list", "--timeout", "1s", "--json"}, listOptions{timeout: time.Second}, true},
		{"releases", []string{"releases", "hello", "--json"}, call(5 * time.Second), true},
		{"history", []string{"history", "hello", "-n", "3"}, historyOptions{appOptions: call(5 * time.Second), lines: 3}, false},
		{"history, all", []string{"history", "-n", "0", "hello"}, historyOptions{appOptions: call(5 * time.Second)}, false},
		{"lock", []string{"lock", "hello", "-m", "migration until 14:00"}, lockOptions{appOptions: call(10 * time.Second), message: "migration until 14:00"}, false},
		{"unlock", []string{"unlock", "hello", "--json"}, call(10 * time.Second), true},
		{"handoff put from stdin", []string{"handoff", "hello", "put", "k", "-"}, handoffOptions{appOptions: call(10 * time.Second), op: "put", key: "k", value: "-"}, false},
		{"handoff put, --json last", []string{"handoff", "hello", "put", "k", "-", "--json"},
			handoffOptions{appOptions: call(10 * time.Second), op: "put", key: "k", value: "-"}, true},
		{"handoff get", []string{"handoff", "--timeout", "1s", "hello", "get", "k"}, handoffOptions{appOptions: call(time.Second), op: "get", key: "k"}, false},
		{"handoff list", []string{"handoff", "hello", "list"}, handoffOptions{appOptions: call(10 * time.Second), op: "list"}, false},
		{"handoff delete", []string{"handoff", "hello", "delete", "k"}, handoffOptions{appOptions: call(10 * time.Second), op: "delete", key: "k"}, false},
		{"logs", []string{"logs", "hello", "-f", "-n", "5"}, logsOptions{app: "hello", follow: true, lines: 5}, false},
		{"logs, defaults", []string{"logs", "hello"}, logsOptions{app: "hello", lines: 50}, false},
		{"check", []string{"check", "hello"}, app, false},
		{"remove", []string{"remove", "hello", "--purge"}, removeOptions{app: "hello", purge: true}, false},
		{"parent", []string{"--log-level", "debug", "parent", "hello"}, app, false},
		{"version", []string{"version", "--json"}, noOptions{}, true},
		{"man", []string{"man"}, docOptions{}, false},
		{"man config", []string{"man", "config"}, docOptions{which: "config"}, false},
		{"completion", []string{"completion", "zsh"}, docOptions{which: "zsh"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, isJSON, code := parseArgs(t, tt.args...)
			require.Equal(t, exitOK, code)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.json, isJSON, "--json")
		})
	}
}

// The environment variables of flags are read; a flag given wins.
func TestParseOptionsFromEnvironment(t *testing.T) {
	t.Setenv(envCallTimeout, "3s")
	t.Setenv(envSwapTimeout, "7m")
	t.Setenv("BEAMDEPLOY_JSON", "1")
	got, isJSON, _ := parseArgs(t, "status", "hello")
	assert.Equal(t, appOptions{app: "hello", timeout: 3 * time.Second}, got)
	assert.True(t, isJSON)
	got, _, _ = parseArgs(t, "reload", "hello")
	assert.Equal(t, swapOptions{appOptions: appOptions{app: "hello", timeout: 7 * time.Minute}}, got)
	got, _, _ = parseArgs(t, "reload", "hello", "--timeout", "0")
	assert.Equal(t, swapOptions{appOptions: appOptions{app: "hello"}}, got)
}

// Usage errors exit 2 with the message on stderr and nothing on stdout,
// through the commands' own actions: before anything is dialled or
// written (paths lead nowhere, so a command that went on would fail
// otherwise, with exit 1).
func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"--json", "nosuch"}, `"code":2`},
		{[]string{"help", "nosuch"}, "No help topic for 'nosuch'"},
		{[]string{"--bogus", "status"}, "see beamdeploy --help"},
		{[]string{"--log-level"}, "flag needs an argument"},
		{[]string{"--json=maybe", "status", "hello"}, "invalid boolean value"},
		{[]string{"status", "hello", "--bogus"}, "see beamdeploy status --help"},
		{[]string{"status", "hello", "extra"}, `too many arguments: ["extra"]`},
		{[]string{"status", "-x-"}, "-x-"},
		{[]string{"list", "hello"}, "too many arguments"},
		{[]string{"version", "now"}, "usage: beamdeploy version"},
		{[]string{"upgrade", "hello", "--timeout", "xyz", "hello-1.0.0.tar.gz"}, `invalid value "xyz"`},
		{[]string{"upgrade", "hello"}, "missing TARBALL"},
		{[]string{"upgrade"}, "missing APP"},
		{[]string{"upgrade", "hello", "app.tar.gz"}, "pass --version VERSION"},
		{[]string{"upgrade", "hello", "-"}, "stdin needs --version"},
		{[]string{"upgrade", "hello", "hello-1.0.0.tar.gz", "--version"}, "flag needs an argument: -version"},
		{[]string{"upgrade", "hello", "hello-1.0.0.tar.gz", "more.tar.gz"}, "too many arguments"},
		{[]string{"stage", "hello", "hello.zip", "--version", "1.0.0"}, "want NAME.tar.gz"},
		{[]string{"hot-upgrade", "hello", "hello-1.0.0.tar.gz", "-m", "two\nlines"}, "--message: "},
		{[]string{"reload", "hello", "-m", "two\nlines"}, "--message: "},
		{[]string{"rollback", "hello", "--to"}, "flag needs an argument"},
		{[]string{"wait", "hello", "a", "b"}, "too many arguments"},
		{[]string{"history", "hello", "-n", "-1"}, "-n -1"},
		{[]string{"history", "hello", "-n", "x"}, `invalid value "x"`},
		{[]string{"lock", "hello"}, "beamdeploy lock hello -m TEXT"},
		{[]string{"lock", "hello", "-m", "a\tb"}, "-m: "},
		{[]string{"handoff", "hello"}, "usage: beamdeploy handoff"},
		{[]string{"handoff", "hello", "put", "k"}, "usage: beamdeploy handoff"},
		{[]string{"handoff", "hello", "frob", "k"}, "usage: beamdeploy handoff"},
		{[]string{"logs", "hello", "-n"}, "flag needs an argument: -n"},
		{[]string{"init", "hello", "--exec", "bin/hello"}, "missing --listen"},
		{[]string{"init", "hello", "--listen", "8080"}, "missing --exec"},
		{[]string{"init", "hello", "--listen", "8080", "--exec", "'bin/hello"}, "--exec"},
		{[]string{"remove", "hello", "--purge=no"}, "invalid boolean value"},
		{[]string{"man", "bogus"}, "usage: beamdeploy man"},
		{[]string{"completion", "fish"}, "usage: beamdeploy completion"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			c := newTestCLI(config.Paths{Etc: dir, Units: dir, State: dir, Run: dir})
			assert.Equal(t, exitUsage, c.run(t, tt.args...), "stderr: %s", c.errOut.String())
			assert.Empty(t, c.out.String())
			assert.Contains(t, c.errOut.String(), tt.says)
		})
	}
}

// --help or -h anywhere shows the command's help.
func TestHelpAnywhere(t *testing.T) {
	c := newTestCLI(config.Paths{})
	for _, args := range [][]string{{"upgrade", "--help"}, {"upgrade", "hello", "x.tar.gz", "--help"}, {"upgrade", "hello", "-h"}, {"help", "upgrade"}} {
		require.Equal(t, exitOK, c.run(t, args...), "%v: %s", args, c.errOut.String())
		assert.Contains(t, c.out.String(), "beamdeploy upgrade APP TARBALL|-", "%v", args)
	}
}
