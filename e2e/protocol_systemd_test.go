package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
)

// protocolDoc is the document whose examples TestSystemdProtocolExamples runs.
const protocolDoc = "../docs/protocol.md"

// TestSystemdProtocolExamples runs every example of docs/protocol.md with
// curl from inside a real instance and checks the documented answers, and
// checks the documented environment and listening sockets there: the
// instance is the test binary (role conform), which checks fd 3, sends
// READY=1 and runs a shell script of curl commands generated from the
// document.
func TestSystemdProtocolExamples(t *testing.T) {
	t.Parallel()
	examples, err := beamtest.ProtocolExamples(protocolDoc)
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	a := newApp(t)
	files := map[string][]byte{
		"bin/hello":  []byte("#!/bin/sh\nexec env " + envHelper + "=conform " + helperBin(t) + "\n"),
		"conform.sh": []byte(conformScript(examples)),
		"VERSION":    []byte("1.0.0\n"),
	}
	for i, e := range examples {
		if e.Body != "" && e.Size == 0 {
			files[fmt.Sprintf("examples/%d.body", i)] = []byte(e.Body)
		}
	}
	tarball := filepath.Join(t.TempDir(), "conform-1.0.0.tar.gz")
	writeTarball(t, tarball, files)
	a.mustUpgrade(tarball)

	out := filepath.Join("/var/lib/beamdeploy", a.name, "data", "conform")
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(out, "done")); return err == nil },
		2*time.Minute, 50*time.Millisecond, "the instance did not finish its script; see journalctl -u %s@blue.service", a.name)
	logb, _ := os.ReadFile(filepath.Join(out, "log")) // for messages only
	done, err := os.ReadFile(filepath.Join(out, "done"))
	require.NoError(t, err)
	require.Equal(t, "0", strings.TrimSpace(string(done)), "script: %s", logb)

	fds, err := os.ReadFile(filepath.Join(out, "fds"))
	require.NoError(t, err)
	assert.Contains(t, string(fds), "fd 3: listening")
	t.Logf("%s", fds) // its blocking mode is systemd's and the other holders' (docs/protocol.md)

	env := readEnv(t, filepath.Join(out, "env"))
	want := map[string]string{
		"BEAM_DEPLOY": "1", "BEAMDEPLOY_APP": a.name, "BEAMDEPLOY_UNIT": a.name + "@blue.service",
		"BEAMDEPLOY_COLOR": "blue", "BEAMDEPLOY_RELEASE": "1.0.0", "BEAMDEPLOY_SOCKET": "/run/beamdeploy/" + a.name + "/control.sock",
		"BEAMDEPLOY_DRAIN_TIMEOUT": "5s", "STATE_DIRECTORY": "/var/lib/beamdeploy/" + a.name + "/data",
		"LISTEN_FDS": "1", "LISTEN_FDNAMES": a.name,
	}
	for _, name := range documentedEnv(t) {
		v, ok := env[name]
		if assert.True(t, ok, "documented variable %s is not set in the instance", name) && want[name] != "" {
			assert.Equal(t, want[name], v, name)
		}
	}

	for i, e := range examples {
		t.Run(fmt.Sprintf("%03d %s %s", e.Line, e.Method, e.Path), func(t *testing.T) {
			read := func(ext string) string {
				b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.%s", i, ext)))
				if ext == "body" && errors.Is(err, os.ErrNotExist) { // curl got no body
					return ""
				}
				require.NoError(t, err)
				return string(b)
			}
			code, exit, body := read("code"), strings.TrimSpace(read("exit")), read("body")
			if e.NoAnswer > 0 {
				assert.Equal(t, "28", exit, "curl must give up waiting (exit 28), got an answer %s: %s", code, body)
				return
			}
			require.Equal(t, "0", exit, "curl failed")
			require.Equal(t, strconv.Itoa(e.Status), code, "status; body: %s", body)
			want := os.Expand(e.Expected, func(k string) string { return env[k] })
			switch {
			case strings.HasPrefix(want, "{"):
				assert.NoError(t, beamtest.MatchJSON([]byte(want), []byte(body)))
			case want != "":
				assert.Equal(t, want, strings.TrimSuffix(body, "\n"))
			default:
				assert.Empty(t, body)
			}
		})
	}
}

// conformScript runs the examples in order with curl, after the cutover
// (so that the instance is the active one), into $STATE_DIRECTORY/conform.
func conformScript(examples []beamtest.Example) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
set -u
out="$STATE_DIRECTORY/conform"
env > "$out/env"
call() { curl -s --unix-socket "$BEAMDEPLOY_SOCKET" "$@"; }
call -o /dev/null --max-time 60 "http://beamdeploy/v1/cutover?unit=$BEAMDEPLOY_UNIT" || exit 1
`)
	for i, e := range examples {
		limit := "60"
		if e.NoAnswer > 0 {
			limit = strconv.FormatFloat(e.NoAnswer.Seconds(), 'f', -1, 64)
		}
		data := ""
		switch {
		case e.Size > 0: // made here: a tarball of it would be refused as a compression bomb
			fmt.Fprintf(&b, "head -c %d /dev/zero | tr '\\0' x >\"$out/%d.req\"\n", e.Size, i)
			data = fmt.Sprintf(" --data-binary @\"$out/%d.req\"", i)
		case e.Body != "":
			data = fmt.Sprintf(" --data-binary @examples/%d.body", i)
		}
		fmt.Fprintf(&b, "call -o \"$out/%d.body\" -w '%%{http_code}' --max-time %s -X %s%s \"http://beamdeploy%s\" >\"$out/%d.code\"; echo $? >\"$out/%d.exit\"\n",
			i, limit, e.Method, data, e.Path, i, i)
	}
	return b.String()
}

// documentedEnv returns the variables of the document's environment table.
func documentedEnv(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(protocolDoc)
	require.NoError(t, err)
	defer f.Close()
	var names []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#"):
			in = l == "### Environment"
		case in && strings.HasPrefix(l, "| `"):
			name, _, _ := strings.Cut(strings.TrimPrefix(l, "| `"), "`")
			names = append(names, name)
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, names, "no environment table in %s", protocolDoc)
	return names
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

// conform is the instance of TestSystemdProtocolExamples: it checks its
// listening socket, sends READY=1, runs conform.sh (from its release
// directory) and serves nothing until SIGTERM.
func conform() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	out := filepath.Join(os.Getenv("STATE_DIRECTORY"), "conform")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "fds"), []byte(checkFD3()+"\n"), 0o600); err != nil {
		return err
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		return fmt.Errorf("notify ready: %w", err)
	}
	logf, err := os.Create(filepath.Join(out, "log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "/bin/sh", "conform.sh")
	cmd.Stdout, cmd.Stderr = logf, logf
	status := "0"
	if err := cmd.Run(); err != nil {
		status = err.Error()
	}
	if err := os.WriteFile(filepath.Join(out, "done"), []byte(status+"\n"), 0o600); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// checkFD3 describes fd 3 as the protocol promises it: LISTEN_PID is this
// process, and fd 3 a listening socket; it also says its blocking mode,
// which the protocol leaves open.
func checkFD3() string {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return "LISTEN_PID " + os.Getenv("LISTEN_PID") + " is not this process"
	}
	acc, err := unix.GetsockoptInt(3, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || acc != 1 {
		return fmt.Sprintf("fd 3: not a listening socket (%d, %v)", acc, err)
	}
	fl, err := unix.FcntlInt(3, unix.F_GETFL, 0)
	if err != nil {
		return "fd 3: " + err.Error()
	}
	if fl&unix.O_NONBLOCK == 0 {
		return "fd 3: listening (blocking mode)"
	}
	return "fd 3: listening (O_NONBLOCK)"
}
