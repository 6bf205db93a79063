package e2e_test

// The e2e test binary doubles as the processes of hostile local users:
// with BDTEST_HELPER set, TestMain runs helper(role) instead of the tests.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

const (
	envHelper = "BDTEST_HELPER" // the role: attack, serve, reuse-peer, reuse-holder, conform
	envConfig = "BDTEST_CONFIG" // the role's configuration
)

// attackerRelease is what an attacker's server answers with (X-Release
// and body): a request it answered is counted under this release.
const attackerRelease = "ATTACKER"

// attackConfig is what an attacker tries against an app.
type attackConfig struct {
	App     string        `json:"app"`
	Bin     string        `json:"bin"`     // beamdeploy
	Self    string        `json:"self"`    // this binary, readable by the attacker
	Tarball string        `json:"tarball"` // a release the attacker can read
	Socket  string        `json:"socket"`  // the app's control socket
	Out     string        `json:"out"`     // where the report goes (JSON list of attempts)
	Serve   time.Duration `json:"serve"`   // how long a server that got the listeners would serve
}

// attempt is one thing an attacker tried and what it got: a process's
// exit status or an HTTP status, and the output or body.
type attempt struct {
	What   string `json:"what"`
	Status int    `json:"status"`
	Output string `json:"output"`
}

func helper(role string) int {
	var err error
	switch role {
	case "attack":
		err = attack(os.Getenv(envConfig))
	case "serve":
		err = serveAsAttacker(os.Getenv(envConfig))
	case "reuse-peer":
		err = reusePeer(os.Getenv(envConfig))
	case "reuse-holder":
		err = reuseHolder(os.Getenv(envConfig))
	case "conform":
		err = conform()
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bdtest helper:", err)
		return 1
	}
	return 0
}

// attack tries everything the control socket and the fd broker offer and
// writes what each attempt got to cfg.Out.
func attack(config string) error {
	var cfg attackConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return fmt.Errorf("attack config: %w", err)
	}
	cgroup, _ := os.ReadFile("/proc/self/cgroup") // the test checks the attacker is where it was put
	report := []attempt{{What: "cgroup", Output: string(cgroup)}}
	run := func(what string, env []string, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Serve+time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cfg.Bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		report = append(report, attempt{What: what, Status: exitCode(err), Output: string(out)})
	}
	app := cfg.App
	run("handoff list", nil, "handoff", app, "list")
	run("handoff get", nil, "handoff", app, "get", "secret")
	run("handoff put", nil, "handoff", app, "put", "secret", "pwned")
	run("handoff delete", nil, "handoff", app, "delete", "secret")
	run("status", nil, "status", app)
	run("releases", nil, "releases", app)
	run("wait", nil, "wait", app)
	run("upgrade", nil, "upgrade", app, cfg.Tarball)
	run("stage", nil, "stage", app, cfg.Tarball)
	run("rollback", nil, "rollback", app)
	run("reload", nil, "reload", app)
	for _, r := range []struct{ what, method, path, body string }{
		{"hot wait", http.MethodGet, control.PathHotWait + "?unit=" + app + "@blue.service", ""},
		{"hot report", http.MethodPost, control.PathHotReport, `{"id":"x","ok":true,"pid":1}`},
		{"peers", http.MethodGet, control.PathPeers + "?unit=" + app + "@blue.service", ""},
	} {
		status, body := request(cfg.Socket, r.method, r.path, r.body)
		report = append(report, attempt{What: r.what, Status: status, Output: body})
	}
	// The fd broker, through the exec shim as an instance would: had it
	// handed over the listeners, this binary would serve with them.
	cfgServe, _ := json.Marshal(cfg.Serve) // a Duration always encodes
	run("fd broker", []string{envHelper + "=serve", envConfig + "=" + string(cfgServe)}, "exec", app, "--", cfg.Self)
	return writeReport(cfg.Out, report)
}

// request sends one HTTP request on the control socket; a request that
// gets no answer within 5 s (an accepted long poll) has status 0.
func request(socket, method, path, body string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequest(method, "http://beamdeploy"+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16)) // what arrived is the answer
	return resp.StatusCode, string(b)
}

func writeReport(path string, report []attempt) error {
	b, err := json.Marshal(report)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path) // the test waits for path: it appears whole
}

// serveAsAttacker serves on the listener at fd 3 (LISTEN_FDS), answering
// as attackerRelease, for the duration in config, then exits.
func serveAsAttacker(config string) error {
	var d time.Duration
	if err := json.Unmarshal([]byte(config), &d); err != nil {
		return fmt.Errorf("serve config: %w", err)
	}
	f := os.NewFile(3, "listener")
	ln, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("listener at fd 3: %w", err)
	}
	_ = f.Close() // ln has its own copy
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Release", attackerRelease)
		fmt.Fprintln(w, attackerRelease)
	})}
	time.AfterFunc(d, func() { _ = srv.Close() })
	_ = srv.Serve(ln) // ends with Close
	return nil
}

// reuseConfig tells a reuse-peer which socket to connect to.
type reuseConfig struct {
	Socket string `json:"socket"`
	Kind   string `json:"kind"` // "control" or "broker"
}

// reusePeer connects to the socket, hands the connection to a child
// (reuse-holder, sharing this process's stdin and stdout) and exits at
// once: its PID is then free for another process.
func reusePeer(config string) error {
	var cfg reuseConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return fmt.Errorf("reuse config: %w", err)
	}
	c, err := net.Dial("unix", cfg.Socket)
	if err != nil {
		return err
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	holder := exec.Command(self)
	holder.Env = append(os.Environ(), envHelper+"=reuse-holder")
	holder.Stdin, holder.Stdout, holder.Stderr = os.Stdin, os.Stdout, os.Stderr
	holder.ExtraFiles = []*os.File{f} // fd 3
	return holder.Start()             // and never waited for: this process exits now
}

// reuseHolder waits for a line on stdin, then uses the connection at fd 3
// that its parent opened: an HTTP request on the control socket, or
// receiving descriptors from the fd broker. It prints what it got.
func reuseHolder(config string) error {
	var cfg reuseConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return fmt.Errorf("reuse config: %w", err)
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("wait for the go: %w", err)
	}
	if cfg.Kind == "broker" {
		if err := unix.SetsockoptTimeval(3, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 30}); err != nil {
			return err
		}
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(64*4))
		n, oobn, _, _, err := unix.Recvmsg(3, buf, oob, 0)
		if err != nil {
			return fmt.Errorf("receive from the broker: %w", err)
		}
		fds := 0
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn]) // none when refused
		for _, m := range msgs {
			rights, _ := unix.ParseUnixRights(&m)
			fds += len(rights)
		}
		fmt.Printf("fds %d: %s\n", fds, buf[:n])
		return nil
	}
	c, err := net.FileConn(os.NewFile(3, "conn"))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	// The parent may have answered and closed before the request is sent
	// (its gate refuses at accept): then the write fails and the answer
	// is still there to read.
	if _, err := io.WriteString(c, "GET "+control.PathHandoff+" HTTP/1.1\r\nHost: beamdeploy\r\nConnection: close\r\n\r\n"); err != nil &&
		!errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body) // what arrived is the answer
	fmt.Printf("status %d: %s\n", resp.StatusCode, b)
	return nil
}

// helperBin copies this test binary, once per run, where other users
// can run it.
func helperBin(t *testing.T) string {
	t.Helper()
	beamdeployBin(t)
	helperOnce.Do(func() {
		var self string
		self, helperErr = os.Executable()
		if helperErr != nil {
			return
		}
		var b []byte
		if b, helperErr = os.ReadFile(self); helperErr != nil {
			return
		}
		helperPath = filepath.Join(buildDir, "bdtest-helper")
		helperErr = os.WriteFile(helperPath, b, 0o755)
	})
	require.NoError(t, helperErr)
	return helperPath
}

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)
