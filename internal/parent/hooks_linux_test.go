package parent

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sleepMarker returns a sleep duration unique to this run ("30.123456"),
// so that the sleep is found by its command line.
func sleepMarker() string { return fmt.Sprintf("30.%06d", rand.IntN(1_000_000)) }

// processes returns the pids of live processes (not zombies) whose
// command line contains marker, or whose process group is pgid (when
// pgid > 0).
func processes(t *testing.T, marker string, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")) // gone meanwhile: empty
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue // gone meanwhile
		}
		f := strings.Fields(string(stat[i+1:])) // state ppid pgrp ...
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		inGroup := pgid > 0 && f[2] == strconv.Itoa(pgid)
		if inGroup || (marker != "" && bytes.Contains(cmdline, []byte(marker))) {
			out = append(out, pid)
		}
	}
	return out
}

// requireGroupGone waits until nothing of the hook's process group and no
// process with marker is left.
func requireGroupGone(t *testing.T, pgid int, marker string) {
	t.Helper()
	require.Eventually(t, func() bool { return len(processes(t, marker, pgid)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"left behind: %v", processes(t, marker, pgid))
}

func TestRunGroupTimeoutKillsTheWholeGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
		within time.Duration // after the 1 s timeout
	}{
		{"background grandchild holding stdout", "sleep %s & wait", hookKillGrace},
		{"grandchild ignoring SIGTERM", `trap "" TERM; sleep %s & wait`, 2 * hookKillGrace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			marker := sleepMarker()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			cmd := exec.Command("/bin/sh", "-c", "echo started; "+fmt.Sprintf(tt.script, marker))
			out := newTailWriter(hookOutputTail)
			began := time.Now()
			err := runGroup(ctx, cmd, nil, out)
			took := time.Since(began)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, took, time.Second+tt.within+2*time.Second, "returns soon after the timeout")
			assert.Equal(t, "started", out.String())
			requireGroupGone(t, cmd.Process.Pid, marker)
		})
	}
}

func TestRunGroupKillsWhatAnExitedHookLeft(t *testing.T) {
	marker := sleepMarker()
	cmd := exec.Command("/bin/sh", "-c", "sleep "+marker+" & echo started")
	out := newTailWriter(hookOutputTail)
	began := time.Now()
	require.NoError(t, runGroup(t.Context(), cmd, nil, out))
	assert.Less(t, time.Since(began), hookKillGrace+2*time.Second, "does not wait for the background process")
	assert.Equal(t, "started", out.String())
	requireGroupGone(t, cmd.Process.Pid, marker)
}

func TestRunGroupCapsOutput(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' a; echo; echo the end; exit 3")
	out := newTailWriter(hookOutputTail)
	err := runGroup(t.Context(), cmd, nil, out)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.ExitCode())
	s := out.String()
	assert.True(t, strings.HasPrefix(s, "...aaa"), "earlier output dropped: %.20q", s)
	assert.True(t, strings.HasSuffix(s, "a\nthe end"), "the tail kept: %q", s[len(s)-20:])
	assert.LessOrEqual(t, len(s), hookOutputTail+len("..."))
	assert.Equal(t, hookOutputTail, cap(out.buf), "the buffer never grew")
}

func TestTailWriter(t *testing.T) {
	w := newTailWriter(8)
	for _, p := range []string{"abc", "defgh", "ij", "0123456789xyz", "!"} {
		n, err := w.Write([]byte(p))
		require.NoError(t, err)
		require.Equal(t, len(p), n)
	}
	assert.Equal(t, "6789xyz!", string(w.buf))
	assert.Equal(t, "...6789xyz!", w.String())
	assert.Equal(t, 8, cap(w.buf))
	w = newTailWriter(8)
	_, _ = w.Write([]byte(" short\n"))
	assert.Equal(t, "short", w.String(), "nothing dropped: no ...")
}

func TestRunGroupAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	cmd := exec.Command("/bin/sh", "-c", "id -u; id -g; id -G")
	out := newTailWriter(hookOutputTail)
	require.NoError(t, runGroup(t.Context(), cmd, &hookCred{UID: 54321, GID: 54322, Groups: []uint32{54323}}, out))
	assert.Equal(t, "54321\n54322\n54322 54323", out.String())
}

// fakeUnits answers Unit with a fixed main process.
type fakeUnits struct{ u units.Unit }

func (f fakeUnits) Unit(_ context.Context, name string) (units.Unit, error) {
	u := f.u
	u.Name = name
	return u, nil
}

// startAs starts sleep as uid/gid and returns it; the test kills it.
func startAs(t *testing.T, uid, gid uint32, groups ...uint32) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // cleanup
	return cmd
}

func TestInstanceCredential(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	child := startAs(t, 43210, 43211, 43212)
	pid := child.Process.Pid
	inst := swap.Instance{Unit: "hello@green.service", PID: pid, InvocationID: "abc"}

	cred, err := instanceCredential(t.Context(), fakeUnits{units.Unit{MainPID: pid, InvocationID: "abc"}}, inst)
	require.NoError(t, err)
	assert.Equal(t, &hookCred{UID: 43210, GID: 43211, Groups: []uint32{43212}}, cred)

	_, err = instanceCredential(t.Context(), fakeUnits{units.Unit{MainPID: pid + 1, InvocationID: "abc"}}, inst)
	assert.ErrorContains(t, err, "no longer the main process of hello@green.service")
	_, err = instanceCredential(t.Context(), fakeUnits{units.Unit{MainPID: pid, InvocationID: "restarted"}}, inst)
	assert.ErrorContains(t, err, "no longer the main process")

	require.NoError(t, child.Process.Kill())
	_ = child.Wait() // reaped: the pid is free for reuse
	_, err = instanceCredential(t.Context(), fakeUnits{units.Unit{MainPID: pid, InvocationID: "abc"}}, inst)
	assert.ErrorContains(t, err, fmt.Sprintf("open pid %d", pid))
}

// runHookAs runs a hook that prints who it runs as and fails, so that
// its output is reported, and returns the error.
func runHookAs(t *testing.T, cfg config.Config, inst swap.Instance, um unitLookup) error {
	t.Helper()
	cfg.Hooks.BeforeCutover = []string{"/bin/sh", "-c", `echo "uid=$(id -u) gid=$(id -g)"; exit 1`}
	h := &hookRunner{app: "hello", cfg: cfg, releases: &release.Store{Dir: t.TempDir()}, units: um}
	return h.hooks().BeforeCutover(t.Context(), swap.Transition{ID: "s1", New: inst})
}

func TestHooksRunAsTheAppsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	child := startAs(t, 43220, 43221)
	inst := swap.Instance{Unit: "hello@green.service", PID: child.Process.Pid}
	um := fakeUnits{units.Unit{MainPID: child.Process.Pid}}

	err := runHookAs(t, config.Config{User: config.DynamicUser}, inst, um)
	assert.ErrorContains(t, err, "uid=43220 gid=43221")
	assert.ErrorContains(t, err, "as the dynamic user of hello@green.service")

	err = runHookAs(t, config.Config{User: config.DynamicUser, Hooks: config.Hooks{User: "root"}}, inst, um)
	assert.ErrorContains(t, err, "uid=0 gid=0")
	err = runHookAs(t, config.Config{}, inst, um)
	assert.ErrorContains(t, err, "uid=0 gid=0", "no user: root, as before dynamic users")

	nobody, err := lookupCredential("nobody")
	require.NoError(t, err)
	err = runHookAs(t, config.Config{User: "nobody"}, inst, um)
	assert.ErrorContains(t, err, fmt.Sprintf("uid=%d gid=%d", nobody.UID, nobody.GID))

	err = runHookAs(t, config.Config{User: "root", Hooks: config.Hooks{User: "bdtest-nosuchuser"}}, inst, um)
	assert.ErrorContains(t, err, "before_cutover hook /bin/sh: cannot run it as user bdtest-nosuchuser")
	assert.NotContains(t, err.Error(), "uid=", "not run at all")

	gone := swap.Instance{Unit: "hello@green.service", PID: child.Process.Pid}
	err = runHookAs(t, config.Config{User: config.DynamicUser}, gone, fakeUnits{units.Unit{MainPID: 1}})
	assert.ErrorContains(t, err, "cannot run it as the dynamic user of hello@green.service")
	assert.NotContains(t, err.Error(), "uid=", "not run at all")
}
