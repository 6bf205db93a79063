package beamdeploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the managed app: with helperEnv set, TestMain
// runs a helper instead of the tests. helperSetPID makes the helper set
// LISTEN_PID to its own pid first, as systemd does between fork and exec.
const (
	helperEnv    = "BEAMDEPLOY_TEST_HELPER"
	helperSetPID = "BEAMDEPLOY_TEST_HELPER_SET_PID"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if os.Getenv(helperSetPID) == "1" {
			_ = os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		}
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// helperReport is what a helper prints as JSON on stdout.
type helperReport struct {
	Names      []string `json:"names"`
	Addrs      []string `json:"addrs"`
	Err        string   `json:"err"`
	NoLns      bool     `json:"no_listeners"`
	Env        []string `json:"env"` // LISTEN_* still set afterwards
	FDsBefore  int      `json:"fds_before"`
	FDsAfter   int      `json:"fds_after"`
	SecondSame bool     `json:"second_same"`
	Accepted   bool     `json:"accepted"`
}

func runHelper(mode string) int {
	var r helperReport
	switch mode {
	case "listeners":
		r = helperListeners()
	case "listen":
		r = helperListen(strings.Fields(os.Getenv("HELPER_ADDRS")))
	case "serve":
		return helperServe()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		return 2
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			r.Env = append(r.Env, k+"="+v)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 1
	}
	return 0
}

func (r *helperReport) setErr(err error) {
	r.Err, r.NoLns = err.Error(), errors.Is(err, ErrNoListeners)
}

func helperListeners() helperReport {
	var r helperReport
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		_ = ln.Close() // the runtime poller's fds now exist and do not skew the count
	}
	r.FDsBefore = countFDs(nil)
	ls, err := NamedListeners()
	r.FDsAfter = countFDs(nil)
	if err != nil {
		r.setErr(err)
		return r
	}
	for _, l := range ls {
		r.Names = append(r.Names, l.Name)
		r.Addrs = append(r.Addrs, l.Addr().String())
	}
	again, err := Listeners()
	r.SecondSame = err == nil && len(again) == len(ls) && again[0] == ls[0].Listener
	r.Accepted = acceptOne(ls[0])
	return r
}

// acceptOne dials l and accepts the connection: the listener works.
func acceptOne(l net.Listener) bool {
	c, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		return false
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		return false
	}
	return s.Close() == nil
}

func helperListen(addrs []string) helperReport {
	var r helperReport
	first := map[string]net.Listener{}
	for _, a := range addrs {
		l, err := Listen("tcp", a)
		if err != nil {
			r.setErr(err)
			return r
		}
		r.Addrs = append(r.Addrs, l.Addr().String())
		if prev, ok := first[a]; ok && prev != l {
			r.Err = "second Listen for " + a + " returned another listener"
		}
		first[a] = l
	}
	return r
}

// helperServe is an app: Listen, Ready, Serve until SIGTERM; exit 0 when
// drained.
func helperServe() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := Listen("tcp", os.Getenv("HELPER_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: echoHandler(strconv.Itoa(os.Getpid()))}
	if err := Serve(ctx, srv, ln, ServeOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// listenerFile returns a file for ln's socket to pass in ExtraFiles, dup'd
// through SyscallConn so the socket's blocking mode is left alone.
func listenerFile(t *testing.T, ln net.Listener) *os.File {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	fd := -1
	var dupErr error
	require.NoError(t, rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }))
	require.NoError(t, dupErr)
	f := os.NewFile(uintptr(fd), "listener")
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// helperCmd returns the test binary as a helper in mode with files as fds 3…
// and env added to a clean environment.
func helperCmd(t *testing.T, mode string, files []*os.File, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "LISTEN_") && k != EnvEnabled && k != "NOTIFY_SOCKET" && k != "GORACE" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// The race detector sleeps 1 s at exit by default; helpers exit often.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, append([]string{helperEnv + "=" + mode, "GORACE=" + gorace}, env...)...)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	return cmd
}

// runHelperReport runs a helper to completion and decodes its report.
func runHelperReport(t *testing.T, mode string, files []*os.File, env ...string) helperReport {
	t.Helper()
	out, err := helperCmd(t, mode, files, env...).Output()
	require.NoError(t, err)
	var r helperReport
	require.NoError(t, json.Unmarshal(out, &r), "helper output %q", out)
	return r
}
