package units_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
	"github.com/beamdeploy/beamdeploy/internal/units"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary doubles as the service under test: with
// BDTEST_SERVICE set it behaves as the service described there.
func TestMain(m *testing.M) {
	if mode := os.Getenv("BDTEST_SERVICE"); mode != "" {
		os.Exit(service(mode))
	}
	os.Exit(m.Run())
}

// service runs as a Type=notify service: "ready-after=D", "crash",
// "ready-then-crash-once=FILE", "no-ready", "ignore-term", "serve-fds".
func service(mode string) int {
	switch {
	case mode == "serve-fds":
		return serveFDs()
	case mode == "crash":
		fmt.Fprintln(os.Stderr, "bdtest: crashing at start as asked")
		return 3
	case strings.HasPrefix(mode, "ready-then-crash-once="): // READY=1, then at once what "crash" does, if the file is not there yet
		if f, err := os.OpenFile(strings.TrimPrefix(mode, "ready-then-crash-once="), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			_ = f.Close()
			notify("READY=1")
			fmt.Fprintln(os.Stderr, "bdtest: crashing right after READY=1 as asked")
			return 3
		}
		notify("READY=1")
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		<-ctx.Done()
	case mode == "no-ready":
		time.Sleep(time.Hour)
	case mode == "last-words": // ready; on SIGUSR1 it writes a line and exits 3
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		notify("READY=1")
		<-usr1
		fmt.Fprintln(os.Stderr, "bdtest: last words before exit")
		return 3
	case mode == "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		notify("READY=1")
		time.Sleep(time.Hour)
	case strings.HasPrefix(mode, "ready-after="):
		d, _ := time.ParseDuration(strings.TrimPrefix(mode, "ready-after="))
		time.Sleep(d)
		notify("READY=1")
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		<-ctx.Done()
	}
	return 0
}

// serveFDs accepts on the listener systemd passed at fd 3 and answers
// every connection with "PID LISTEN_FDS LISTEN_FDNAMES".
func serveFDs() int {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		fmt.Fprintln(os.Stderr, "bdtest: LISTEN_PID is not my pid")
		return 5
	}
	f := os.NewFile(3, "listener")
	ln, err := net.FileListener(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bdtest: fd 3:", err)
		return 6
	}
	_ = f.Close() // ln holds its own copy
	notify("READY=1")
	for {
		c, err := ln.Accept()
		if err != nil {
			return 7
		}
		fmt.Fprintf(c, "%d %s %s\n", os.Getpid(), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
		_ = c.Close()
	}
}

func notify(state string) {
	conn, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bdtest: notify:", err)
		os.Exit(4)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state)) // the test sees a missing READY as a failure
}

func startService(t *testing.T, m *units.Manager, mode string, spec units.Spec) (string, units.Unit, error) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	name := beamtest.UnitName(t, ".service")
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = m.Stop(ctx, name)     // cleanup: the unit may be gone already
		_ = m.ResetFailed(ctx, name) // cleanup
	})
	spec.Description = "beamdeploy test " + t.Name()
	spec.ExecStart = []string{exe, "-test.run=^$"}
	spec.Environment = append(spec.Environment, "BDTEST_SERVICE="+mode)
	u, err := m.StartTransient(t.Context(), name, spec)
	return name, u, err
}

func dial(t *testing.T) *units.Manager {
	t.Helper()
	beamtest.RequireSystemd(t)
	m, err := units.Dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestSystemdStartWaitsForReady(t *testing.T) {
	m := dial(t)
	begin := time.Now()
	_, u, err := startService(t, m, "ready-after=300ms", units.Spec{})
	took := time.Since(begin)
	require.NoError(t, err)
	assert.Equal(t, "active", u.ActiveState)
	assert.NotZero(t, u.MainPID)
	assert.NotEmpty(t, u.InvocationID)
	assert.GreaterOrEqual(t, took, 300*time.Millisecond, "returned before READY=1")
}

func TestSystemdStartCrashReportsExit(t *testing.T) {
	m := dial(t)
	begin := time.Now()
	name, u, err := startService(t, m, "crash", units.Spec{})
	var je *units.JobError
	require.ErrorAs(t, err, &je)
	assert.ErrorIs(t, err, units.ErrJobFailed)
	assert.Equal(t, "failed", je.Result)
	assert.Equal(t, "exited with status 3", je.Exit)
	require.NotEmpty(t, u.InvocationID)
	requireCrashLogged(t, name, begin)

	// The failed name is reusable at once.
	require.NoError(t, m.ResetFailed(t.Context(), name))
	exe, _ := os.Executable()
	_, err = m.StartTransient(t.Context(), name, units.Spec{
		ExecStart: []string{exe, "-test.run=^$"}, Environment: []string{"BDTEST_SERVICE=ready-after=0s"},
	})
	require.NoError(t, err)
}

func TestSystemdStartTimeoutWithoutReady(t *testing.T) {
	m := dial(t)
	begin := time.Now()
	_, _, err := startService(t, m, "no-ready", units.Spec{TimeoutStart: time.Second})
	var je *units.JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, "timeout", je.ServiceResult)
	assert.Less(t, time.Since(begin), 10*time.Second) // loose: 1 s timeout, a busy machine
}

func TestSystemdStartRefusesRunningUnit(t *testing.T) {
	m := dial(t)
	name, _, err := startService(t, m, "ready-after=0s", units.Spec{})
	require.NoError(t, err)
	_, err = m.StartTransient(t.Context(), name, units.Spec{ExecStart: []string{"/bin/true"}})
	require.ErrorIs(t, err, units.ErrUnitActive)
}

func TestSystemdStopKillsAfterTimeout(t *testing.T) {
	m := dial(t)
	name, _, err := startService(t, m, "ignore-term", units.Spec{TimeoutStop: time.Second})
	require.NoError(t, err)
	begin := time.Now()
	u, err := m.Stop(t.Context(), name)
	require.NoError(t, err)
	assert.Equal(t, "timeout", u.Result)
	assert.GreaterOrEqual(t, time.Since(begin), time.Second)
	// systemd unloads the stopped unit when its garbage collection gets to
	// it, a moment after the stop job ended (StartTransient waits for it).
	require.Eventually(t, func() bool {
		_, err = m.Unit(t.Context(), name)
		return errors.Is(err, units.ErrNoSuchUnit)
	}, 30*time.Second, 20*time.Millisecond, "stopped unit must be gone so the name can be reused: %v", err)
}

func TestSystemdStopUnknownUnit(t *testing.T) {
	m := dial(t)
	_, err := m.Stop(t.Context(), beamtest.UnitName(t, ".service"))
	require.NoError(t, err)
}

func TestSystemdVersion(t *testing.T) {
	m := dial(t)
	v, err := m.Version(t.Context())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, v, 240)
}

// journalWait bounds how long a test waits for journald to store a line a
// unit wrote: journald is slow on a busy machine and right after boot (a
// fresh Debian 13 root once took more than 3 s). Waits end as soon as the
// line is there.
const journalWait = 30 * time.Second

// requireCrashLogged waits until the unit's journal since since shows the
// line its process wrote before it crashed. By unit, not by invocation:
// journald reads a process's stream when it gets to it, and when the
// process is gone by then, its lines carry the unit (systemd names it to
// journald) but no _SYSTEMD_INVOCATION_ID (seen on a busy machine: the
// crash-at-start test's line never showed by invocation; with journald
// frozen while a unit prints and exits, every time).
func requireCrashLogged(t *testing.T, name string, since time.Time) {
	t.Helper()
	var last atomic.Value // the lines last read; the condition may still run at the timeout
	if !assert.Eventually(t, func() bool {
		lines, _ := units.JournalSince(t.Context(), name, since, 20) // an error: read again
		last.Store(lines)
		return strings.Contains(strings.Join(lines, "\n"), "crashing at start")
	}, journalWait, 50*time.Millisecond) {
		t.Fatalf("no line of the crash in the journal of %s since %s; last read: %q", name, since.Format(time.RFC3339Nano), last.Load())
	}
}

// restartDelay is what the tests give units that restart on failure.
const restartDelay = 100 * time.Millisecond

func TestSystemdRestartingUnitCrashAtStartFails(t *testing.T) {
	m := dial(t)
	begin := time.Now()
	name, u, err := startService(t, m, "crash", units.Spec{RestartDelay: restartDelay})
	took := time.Since(begin)
	var je *units.JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, "failed", je.Result)
	assert.Equal(t, "exit-code", je.ServiceResult)
	assert.Equal(t, "exited with status 3", je.Exit)
	// je.Exit above says systemd did not restart it (a restart is reported
	// as "failed before READY=1 and was restarted"); the bound is loose so
	// that a busy machine does not fail it, and far below the start limit's
	// 5 restarts.
	assert.Less(t, took, 10*time.Second, "a crash at start is reported at once, not after the start limit")
	require.NotEmpty(t, u.InvocationID)
	requireCrashLogged(t, name, begin)
	after, err := m.Unit(t.Context(), name)
	if err == nil {
		assert.False(t, after.Running(), "the unit is stopped, not restarting: %+v", after)
	}
}

func TestSystemdRestartingUnitTimeoutWithoutReadyFails(t *testing.T) {
	m := dial(t)
	begin := time.Now()
	_, _, err := startService(t, m, "no-ready", units.Spec{TimeoutStart: time.Second, RestartDelay: restartDelay})
	var je *units.JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, "timeout", je.ServiceResult)
	assert.NotContains(t, je.Exit, "restarted", "the first start's timeout ends the start; systemd does not retry it")
	assert.Less(t, time.Since(begin), 10*time.Second) // loose: 1 s timeout, a busy machine
}

// A first attempt that sent READY=1 and died right after did start: systemd
// finished the start job "done" before the death, and this process reading
// the unit only after it (a busy machine) must not turn that into a failed
// start. The death is for the caller to judge (the swap's settle window);
// systemd restarts the unit. With a restart delay of 1 ms systemd queues
// the restart job (and counts the restart) at once, so on a busy machine
// this process often looks only after that, as after 100 ms for a process
// kept off the CPU.
func TestSystemdRestartingUnitReadyThenCrashStarted(t *testing.T) {
	for _, delay := range []time.Duration{restartDelay, time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			m := dial(t)
			mode := "ready-then-crash-once=" + filepath.Join(t.TempDir(), "crashed")
			name, u, err := startService(t, m, mode, units.Spec{RestartDelay: delay})
			require.NoError(t, err, "the start job finished done: READY=1 came before the crash")
			assert.NotZero(t, u.Activated, "the unit became active")
			require.NotEmpty(t, u.InvocationID)
			var after units.Unit
			if !assert.Eventually(t, func() bool {
				after, err = m.Unit(t.Context(), name)
				return err == nil && after.Restarts == 1 && after.ActiveState == "active"
			}, 30*time.Second, 20*time.Millisecond) {
				t.Fatalf("systemd restarts the unit: last seen %+v, %v", after, err)
			}
		})
	}
}

// killMain sends SIGKILL to the main process of u.
func killMain(t *testing.T, u units.Unit) {
	t.Helper()
	require.NotZero(t, u.MainPID)
	require.NoError(t, exec.Command("kill", "-9", strconv.Itoa(u.MainPID)).Run())
}

func waitRestarted(t *testing.T, m *units.Manager, name string, before units.Unit) units.Unit {
	t.Helper()
	var u units.Unit
	var err error
	if !assert.Eventually(t, func() bool {
		u, err = m.Unit(t.Context(), name)
		return err == nil && u.ActiveState == "active" && u.InvocationID != before.InvocationID
	}, 30*time.Second, 20*time.Millisecond) {
		t.Fatalf("not restarted: %+v %v", u, err)
	}
	return u
}

func TestSystemdRestartOnFailureAfterReady(t *testing.T) {
	m := dial(t)
	name, u, err := startService(t, m, "ready-after=0s", units.Spec{RestartDelay: restartDelay})
	require.NoError(t, err)
	killMain(t, u)
	after := waitRestarted(t, m, name, u)
	assert.NotEqual(t, u.MainPID, after.MainPID)
	assert.Equal(t, 1, after.Restarts)
}

// listenerFD returns a listener's address and a duplicate of its
// descriptor, taken without os.File.Fd (which would make it blocking).
func listenerFD(t *testing.T) (*net.TCPListener, int) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	rc, err := ln.SyscallConn()
	require.NoError(t, err)
	fd := -1
	require.NoError(t, rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) }))
	require.NoError(t, err)
	syscall.CloseOnExec(fd)
	return ln, fd
}

func ask(t *testing.T, addr string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	b := make([]byte, 256)
	n, _ := c.Read(b)
	return strings.Fields(string(b[:n]))
}

// On systemd >= 257 systemd itself holds the listener (ExtraFileDescriptors)
// and hands it to the restarted process after the caller closed its
// copies; older systemd refuses the property.
func TestSystemdExtraFileDescriptors(t *testing.T) {
	m := dial(t)
	v, err := m.Version(t.Context())
	require.NoError(t, err)
	ln, fd := listenerFD(t)
	addr := ln.Addr().String()
	name, u, err := startService(t, m, "serve-fds", units.Spec{RestartDelay: restartDelay, FDs: []units.FD{{Num: fd, Name: "web"}}})
	if v < units.ExtraFDsVersion {
		require.Error(t, err, "systemd %d accepted ExtraFileDescriptors", v)
		t.Logf("systemd %d refuses ExtraFileDescriptors: %v", v, err)
		return
	}
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	require.NoError(t, syscall.Close(fd))
	got := ask(t, addr)
	require.Equal(t, []string{strconv.Itoa(u.MainPID), "1", "web"}, got)

	killMain(t, u)
	after := waitRestarted(t, m, name, u)
	got = ask(t, addr)
	require.Equal(t, []string{strconv.Itoa(after.MainPID), "1", "web"}, got, "the restarted process serves the same listener")
}

// A colour is started again the moment it was stopped (back-to-back
// swaps): the stopped unit may still be loaded, which must never make the
// start fail.
func TestSystemdStartStopStartSameNameNoPause(t *testing.T) {
	m := dial(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	name := beamtest.UnitName(t, ".service")
	t.Cleanup(func() { _, _ = m.Stop(context.Background(), name) }) // cleanup
	spec := units.Spec{ExecStart: []string{exe, "-test.run=^$"}, Environment: []string{"BDTEST_SERVICE=ready-after=0s"},
		RestartDelay: restartDelay, Hardened: true, SharedTmp: units.HiddenByPrivateTmp(exe)} // go test builds under /tmp
	const rounds = 40
	for i := range rounds {
		u, err := m.StartTransient(t.Context(), name, spec)
		require.NoError(t, err, "start %d of %d", i+1, rounds)
		require.Equal(t, "active", u.ActiveState)
		_, err = m.Stop(t.Context(), name)
		require.NoError(t, err, "stop %d of %d", i+1, rounds)
	}
}

// The previous unit of the name is still stopping (its stop was requested
// by someone else and did not wait): the start waits until it is gone.
func TestSystemdStartWaitsForStoppingLeftover(t *testing.T) {
	m := dial(t)
	// Killed 3 s after the stop began: time for the poll below to see the
	// stop begin on a busy machine, and still 500 ms before the kill.
	name, _, err := startService(t, m, "ignore-term", units.Spec{TimeoutStop: 3 * time.Second})
	require.NoError(t, err)
	out, err := exec.Command("systemctl", "stop", "--no-block", name).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Eventually(t, func() bool {
		u, err := m.Unit(t.Context(), name)
		return err == nil && u.ActiveState == "deactivating"
	}, 30*time.Second, 10*time.Millisecond, "the stop began")
	begin := time.Now()
	exe, _ := os.Executable()
	u, err := m.StartTransient(t.Context(), name, units.Spec{
		ExecStart: []string{exe, "-test.run=^$"}, Environment: []string{"BDTEST_SERVICE=ready-after=0s"},
	})
	require.NoError(t, err)
	assert.Equal(t, "active", u.ActiveState)
	assert.GreaterOrEqual(t, time.Since(begin), 500*time.Millisecond, "waited for the old one to be killed")
}

// keptLoaded starts name, makes another unit refer to it (Wants=) and
// stops name: systemd keeps a stopped unit loaded while a unit that is up
// refers to it. It returns the referring unit.
func keptLoaded(t *testing.T, m *units.Manager) (name, holder string) {
	t.Helper()
	name, _, err := startService(t, m, "ready-after=0s", units.Spec{})
	require.NoError(t, err)
	holder = strings.TrimSuffix(name, ".service") + "-holder.service"
	out, err := exec.Command("systemd-run", "--unit", holder, "--property", "Wants="+name, "sleep", "600").CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _, _ = m.Stop(context.Background(), holder) }) // cleanup
	_, err = m.Stop(t.Context(), name)
	require.NoError(t, err)
	u, err := m.Unit(t.Context(), name)
	require.NoError(t, err, "the stopped unit stays loaded while %s refers to it", holder)
	require.Equal(t, "inactive", u.ActiveState)
	return name, holder
}

func readySpec() units.Spec {
	exe, _ := os.Executable()
	return units.Spec{ExecStart: []string{exe, "-test.run=^$"}, Environment: []string{"BDTEST_SERVICE=ready-after=0s"}}
}

// A stopped unit that is still loaded: the start waits until systemd has
// unloaded it.
func TestSystemdStartWaitsForStoppedUnitToUnload(t *testing.T) {
	m := dial(t)
	name, holder := keptLoaded(t, m)
	released := time.Now().Add(time.Second)
	go func() {
		time.Sleep(time.Until(released))
		_, _ = m.Stop(context.Background(), holder) // the start below fails if this does
	}()
	u, err := m.StartTransient(t.Context(), name, readySpec())
	require.NoError(t, err)
	assert.Equal(t, "active", u.ActiveState)
	assert.False(t, time.Now().Before(released), "started only once the old unit could be unloaded")
}

// When the old unit stays loaded, the start gives up at its bound and
// says what to do.
func TestSystemdStartGivesUpOnUnitThatStaysLoaded(t *testing.T) {
	m := dial(t)
	name, _ := keptLoaded(t, m)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	begin := time.Now()
	_, err := m.StartTransient(ctx, name, readySpec())
	require.ErrorIs(t, err, units.ErrUnitLoaded)
	assert.Contains(t, err.Error(), "systemctl list-dependencies --reverse "+name)
	assert.Less(t, time.Since(begin), 10*time.Second)
}

// A process's last line that journald reads only after the process is
// gone carries no invocation id; Journal still finds it, by the unit and
// the invocation's main process. Journald is frozen while the process
// writes and exits.
func TestSystemdJournalFindsLastWordsReadLate(t *testing.T) {
	m := dial(t)
	name, u, err := startService(t, m, "last-words", units.Spec{})
	require.NoError(t, err)
	out, err := exec.Command("systemctl", "show", "-p", "MainPID", "--value", "systemd-journald.service").Output()
	require.NoError(t, err)
	journald, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	require.NotZero(t, journald, "journald runs")
	require.NoError(t, syscall.Kill(journald, syscall.SIGSTOP))
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(journald, syscall.SIGCONT) // never leave journald frozen
		}
	}
	t.Cleanup(thaw)
	require.NoError(t, syscall.Kill(u.MainPID, syscall.SIGUSR1))
	require.Eventually(t, func() bool { return errors.Is(syscall.Kill(u.MainPID, 0), syscall.ESRCH) }, 30*time.Second, 10*time.Millisecond,
		"the process wrote its line and exited (systemd reaped it)")
	// A frozen journald does not hold a reader (a failure report) up: its
	// request to store what journald has received gives up.
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = units.Journal(t.Context(), name, u.InvocationID, u.MainPID, 20)
	}()
	select {
	case <-read:
	case <-time.After(30 * time.Second):
		thaw()
		t.Fatal("reading the journal waited on a frozen journald")
	}
	thaw()
	var last atomic.Value
	if !assert.Eventually(t, func() bool {
		lines, _ := units.Journal(t.Context(), name, u.InvocationID, u.MainPID, 20) // an error: read again
		last.Store(lines)
		return strings.Contains(strings.Join(lines, "\n"), "last words before exit")
	}, journalWait, 50*time.Millisecond) {
		t.Fatalf("the line written before the exit is not in the journal of invocation %s; last read: %q", u.InvocationID, last.Load())
	}
}
