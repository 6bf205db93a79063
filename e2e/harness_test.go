package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/stretchr/testify/require"
)

var (
	buildDir  string
	buildOnce sync.Once
	buildErr  error
	appSeq    atomic.Int32
	helloMu   sync.Mutex
	helloBins = map[string]string{}
)

func TestMain(m *testing.M) {
	if role := os.Getenv(envHelper); role != "" { // this binary plays a process of a test
		os.Exit(helper(role))
	}
	if os.Getenv(floodEnv) != "" {
		os.Exit(floodMain()) // the flooder of TestSystemdControlSocketFlood
	}
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir) // temp build output
	}
	os.Exit(code)
}

// goBuild builds pkg with the tag faults, which gives examples/hello the
// fault knobs of its faults.go (crash at start, never READY=1, ...).
func goBuild(out, pkg, ldflags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "faults", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// beamdeployBin builds cmd/beamdeploy once per test run.
func beamdeployBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// Not under /tmp: instances get a private /tmp (PrivateTmp=yes) and
		// exec beamdeploy from here.
		buildDir, buildErr = os.MkdirTemp("/run", "beamdeploy-e2e-")
		if buildErr == nil {
			// Instances run as other users too and exec beamdeploy from here.
			buildErr = os.Chmod(buildDir, 0o755)
		}
		if buildErr == nil {
			buildErr = goBuild(filepath.Join(buildDir, "beamdeploy"), "github.com/beamdeploy/beamdeploy/cmd/beamdeploy", "-X main.version=e2e")
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(buildDir, "beamdeploy")
}

// helloBin builds examples/hello reporting version v.
func helloBin(t *testing.T, v string) string {
	t.Helper()
	beamdeployBin(t)
	helloMu.Lock()
	defer helloMu.Unlock()
	if p, ok := helloBins[v]; ok {
		return p
	}
	p := filepath.Join(buildDir, "hello-"+v)
	require.NoError(t, goBuild(p, "github.com/beamdeploy/beamdeploy/examples/hello", "-X main.version="+v))
	helloBins[v] = p
	return p
}

// release writes hello-VERSION.tar.gz. With env, bin/hello is a shell
// wrapper that sets env and execs the real binary: a release that, say,
// crashes at start.
func release(t *testing.T, version string, env ...string) string {
	t.Helper()
	return releaseWith(t, version, nil, env...)
}

// releaseWith is release with extra files (such as a manifest).
func releaseWith(t *testing.T, version string, extra map[string][]byte, env ...string) string {
	t.Helper()
	bin, err := os.ReadFile(helloBin(t, strings.SplitN(version, "-", 2)[0]))
	require.NoError(t, err)
	files := map[string][]byte{"bin/hello": bin, "VERSION": []byte(version + "\n")}
	if len(env) > 0 {
		files["bin/hello.real"] = bin
		files["bin/hello"] = []byte("#!/bin/sh\nexec env " + strings.Join(env, " ") + " \"$(dirname \"$0\")/hello.real\" \"$@\"\n")
	}
	maps.Copy(files, extra)
	p := filepath.Join(t.TempDir(), "hello-"+version+".tar.gz")
	writeTarball(t, p, files)
	return p
}

// app is one beamdeploy-managed app in the sandbox.
type app struct {
	t    *testing.T
	bin  string
	name string
	addr string
}

// newApp runs `beamdeploy init` for a fresh app of examples/hello on its
// own port.
func newApp(t *testing.T, extra ...string) *app {
	t.Helper()
	return newAppExec(t, "bin/hello", extra...)
}

// newAppExec is newApp for an app whose releases run command.
func newAppExec(t *testing.T, command string, extra ...string) *app {
	t.Helper()
	beamtest.RequireSystemd(t)
	n := appSeq.Add(1)
	a := &app{t: t, bin: beamdeployBin(t), name: fmt.Sprintf("e2e%d-%d", os.Getpid()%10000, n), addr: fmt.Sprintf("127.0.0.1:%d", 18000+n)}
	args := append([]string{"init", a.name, "--listen", a.addr, "--exec", command, "--drain-timeout", "5s", "--ready-timeout", "10s"}, extra...)
	out, err := a.run(args...)
	require.NoError(t, err, out)
	t.Cleanup(func() {
		_ = exec.Command("systemctl", "stop", a.name+".service", a.name+".socket").Run() // cleanup
	})
	return a
}

// run runs beamdeploy and returns its combined output.
func (a *app) run(args ...string) (string, error) {
	cmd := exec.CommandContext(a.t.Context(), a.bin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// upgrade runs `beamdeploy --json upgrade` and returns the result.
func (a *app) upgrade(tarball string) (control.Result, string, error) {
	return a.swapCommand("upgrade", tarball)
}

// swapCommand runs `beamdeploy --json CMD APP ARGS...` and returns the
// result message, stderr and the exit error.
func (a *app) swapCommand(cmdName string, args ...string) (control.Result, string, error) {
	cmd := exec.CommandContext(a.t.Context(), a.bin, append([]string{"--json", cmdName, a.name}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res control.Result
	for _, line := range strings.Split(stdout.String(), "\n") {
		var m control.Result
		if json.Unmarshal([]byte(line), &m) == nil && m.MessageType == control.TypeResult {
			res = m
		}
	}
	return res, stderr.String(), err
}

func (a *app) mustUpgrade(tarball string) control.Result {
	a.t.Helper()
	res, stderr, err := a.upgrade(tarball)
	require.NoError(a.t, err, stderr)
	require.True(a.t, res.OK, "%+v", res)
	return res
}

func (a *app) status() control.Status {
	a.t.Helper()
	out, err := exec.CommandContext(a.t.Context(), a.bin, "--json", "status", a.name).Output()
	require.NoError(a.t, err)
	var st control.Status
	require.NoError(a.t, json.Unmarshal(out, &st))
	return st
}

// restartedParent waits (bounded) until a parent other than pid answers
// status with an active instance, and returns that status. A restarted
// parent answers on its control socket before it has listed and adopted
// the running instances (status shows no active instance and no last
// swap until then), and systemd starts it when it will on a busy machine.
func (a *app) restartedParent(pid int) control.Status {
	a.t.Helper()
	var st control.Status
	require.Eventually(a.t, func() bool {
		out, err := exec.Command(a.bin, "--json", "status", a.name).Output()
		st = control.Status{}
		return err == nil && json.Unmarshal(out, &st) == nil && st.ParentPID != pid && st.Active != nil
	}, 60*time.Second, 200*time.Millisecond, "systemd restarts the parent (pid %d) and it adopts the instance", pid)
	return st
}

// get returns the X-Release of one request.
func (a *app) get() (string, error) {
	ctx, cancel := context.WithTimeout(a.t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.addr+"/", nil)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // drain for a clean close
	return resp.Header.Get("X-Release"), nil
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
