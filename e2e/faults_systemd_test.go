package e2e_test

// The fault-injection suite (issue 5, F1-F15) that has no home in the other
// files. Each case runs load against the app while the fault happens and
// requires 0 failed requests wherever the old instance was healthy.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/loadgen"
)

// loadDuring runs fn while two load generators (a new connection per GET,
// and keep-alive POSTs) send requests to a, and requires that none of
// them failed.
func loadDuring(t *testing.T, a *app, fn func()) {
	t.Helper()
	fresh, kept := loadAround(t, a, fn)
	assert.Zero(t, fresh.Failed, "new-connection requests failed: %v", fresh.Errors)
	assert.Zero(t, kept.Failed, "keep-alive requests failed: %v", kept.Errors)
}

// loadAround runs fn under the load of loadDuring and returns what each
// generator saw.
func loadAround(t *testing.T, a *app, fn func()) (fresh, kept loadgen.Stats) {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	url := "http://" + a.addr + "/"
	wg.Go(func() {
		fresh = loadgen.Run(ctx, loadgen.Options{URL: url, Workers: loadWorkers, Duration: 5 * time.Minute, MaxRequests: 2_000_000})
	})
	wg.Go(func() {
		kept = loadgen.Run(ctx, loadgen.Options{URL: url, KeepAlive: true, Method: "POST", Body: []byte("x"), Workers: loadWorkers,
			Duration: 5 * time.Minute, MaxRequests: 2_000_000})
	})
	time.Sleep(200 * time.Millisecond)
	defer func() {
		time.Sleep(200 * time.Millisecond)
		stop()
		wg.Wait()
		t.Logf("load: new connections %s; keep-alive POST %s", fresh, kept)
		assert.Positive(t, fresh.OK+kept.OK)
	}()
	fn()
	return fresh, kept
}

// loadWorkers is the concurrency of each load generator.
const loadWorkers = 2

// F3, first half: READY=1 and then dead within the settle window → the
// swap rolls back and the old instance keeps serving.
func TestSystemdF3DiesWithinSettleWindow(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--settle", "2s", "--force")
	a.mustUpgrade(release(t, "1.0.0"))
	dies := release(t, "1.1.0-dies", "HELLO_FAIL_AFTER=300ms")
	loadDuring(t, a, func() {
		res, stderr, err := a.upgrade(dies)
		require.Equal(t, 3, exitCode(err), "exit 3 = rolled back; stderr: %s", stderr)
		assert.False(t, res.OK)
		assert.Contains(t, stderr, "settle window")
		assert.Contains(t, stderr, "HELLO_FAIL_AFTER", "the unit's journal lines are reported")
	})
	requireServing(t, a, "1.0.0")
	assert.Equal(t, []string{a.name + "@blue.service"}, a.activeInstances())
}

// F3, second half: dead after the cutover → systemd restarts it on the
// same listener and it keeps serving.
func TestSystemdF3DiesAfterCutoverIsRestarted(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	// The instance's user may write only into its state directory (the
	// wrapper's shell expands the variable).
	next := release(t, "1.1.0-fails-once", "HELLO_FAIL_AFTER=2s", "HELLO_FAIL_ONCE=$STATE_DIRECTORY/failed-once")
	unit := a.name + "@green.service"
	loadDuring(t, a, func() {
		res := a.mustUpgrade(next)
		require.Equal(t, unit, res.To.Unit)
		require.Eventually(t, func() bool {
			return show(unit, "NRestarts") == "1" && show(unit, "ActiveState") == "active"
		}, 60*time.Second, 100*time.Millisecond, "systemd restarts the instance")
		assert.NotEqual(t, res.To.InvocationID, strings.ReplaceAll(show(unit, "InvocationID"), "-", ""))
		time.Sleep(500 * time.Millisecond)
	})
	requireServing(t, a, "1.1.0")
	assert.Equal(t, []string{unit}, a.activeInstances())
	assert.Eventually(t, func() bool {
		st, ok := a.statusNow()
		return ok && st.Active != nil && show(unit, "MainPID") == strconv.Itoa(st.Active.PID)
	}, 30*time.Second, 200*time.Millisecond,
		"status shows the restarted process (it answers with its record when systemd is slow to)")
	out, err := a.run("upgrade", a.name, release(t, "1.2.0"))
	require.NoError(t, err, out)
	requireServing(t, a, "1.2.0")
}

// F5: systemctl daemon-reload every 100 ms during 20 swaps.
func TestSystemdF5DaemonReloadStorm(t *testing.T) {
	a := newApp(t, "--settle", "0s", "--force")
	v1, v2 := release(t, "1.0.0"), release(t, "1.1.0")
	a.mustUpgrade(v1)
	ctx, stop := context.WithCancel(t.Context())
	var reloads int
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil && reloads < 2000 {
			if out, err := exec.CommandContext(ctx, "systemctl", "daemon-reload").CombinedOutput(); err == nil {
				reloads++
			} else if ctx.Err() == nil {
				t.Errorf("daemon-reload: %v: %s", err, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	loadDuring(t, a, func() {
		for i := range 20 {
			res, stderr, err := a.upgrade([]string{v2, v1}[i%2])
			if !assert.NoError(t, err, "swap %d: %s", i+1, stderr) || !assert.True(t, res.OK) {
				break
			}
		}
	})
	stop()
	wg.Wait()
	// A daemon-reload takes most of a second here: the loop runs them back
	// to back, 100 ms apart.
	t.Logf("%d daemon-reloads during 20 swaps", reloads)
	assert.GreaterOrEqual(t, reloads, 10)
	assert.Len(t, a.activeInstances(), 1)
	requireServing(t, a, "1.0.0")
}

// F7: ten concurrent upgrades → exactly one runs, the other nine are
// refused with exit 5.
func TestSystemdF7TenConcurrentUpgrades(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	// The swap starts the app for 5 s: the nine others reach the parent
	// meanwhile, however busy the machine.
	slow := release(t, "1.1.0-slow", "HELLO_READY_DELAY=5s")
	codes := make([]int, 10)
	loadDuring(t, a, func() {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range codes {
			wg.Go(func() {
				<-start
				_, _, err := a.upgrade(slow)
				codes[i] = exitCode(err)
			})
		}
		close(start)
		wg.Wait()
	})
	ran, refused := 0, 0
	for _, c := range codes {
		switch c {
		case 0:
			ran++
		case 5:
			refused++
		}
	}
	assert.Equal(t, 1, ran, "exit codes %v", codes)
	assert.Equal(t, 9, refused, "exit codes %v", codes)
	requireServing(t, a, "1.1.0")
}

// F8: the CLI is SIGKILLed mid-swap → the parent rolls the swap back
// (its request context ends before the cutover): the swap is recorded as
// failed, the new instance is gone, the old release keeps serving, and
// the next swap works.
func TestSystemdF8CLIKilledMidSwap(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	slow := release(t, "1.1.0-slow", "HELLO_READY_DELAY=5s") // the phase the test waits for lasts 5 s
	loadDuring(t, a, func() {
		cli := exec.Command(a.bin, "upgrade", a.name, slow)
		require.NoError(t, cli.Start())
		require.Eventually(t, func() bool { return a.status().Phase.String() == "starting" }, 60*time.Second, 20*time.Millisecond)
		require.NoError(t, cli.Process.Signal(syscall.SIGKILL))
		_ = cli.Wait() // killed
		require.Eventually(t, func() bool { return !a.status().Upgrading }, 60*time.Second, 100*time.Millisecond)
		st := a.status()
		require.NotNil(t, st.LastSwap)
		assert.False(t, st.LastSwap.OK, "the swap of the killed CLI was rolled back")
		assert.Equal(t, "1.1.0-slow", st.LastSwap.Release)
		assert.Contains(t, st.LastSwap.Error, "rolled back")
		t.Logf("swap of the killed CLI: error=%q", st.LastSwap.Error)
		require.NotNil(t, st.Active)
		assert.Equal(t, "1.0.0", st.Active.Release, "the old release is still the active one")
		assert.Len(t, a.activeInstances(), 1, "the new instance was stopped")
		requireServing(t, a, "1.0.0")
		a.mustUpgrade(release(t, "1.2.0"))
	})
	requireServing(t, a, "1.2.0")
}

// F11: failed units (a crashed release, and a foreign failed unit under
// the next colour's name) never block the next swap.
func TestSystemdF11FailedUnitNeverBlocksNextSwap(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	loadDuring(t, a, func() {
		_, stderr, err := a.upgrade(release(t, "1.1.0-crash", "HELLO_CRASH_AT_START=1"))
		require.Equal(t, 3, exitCode(err), stderr)
		green := a.name + "@green.service"
		_ = exec.Command("systemd-run", "--unit", green, "-p", "Type=oneshot", "/bin/false").Run() // fails on purpose
		require.Equal(t, "failed", show(green, "ActiveState"))
		res := a.mustUpgrade(release(t, "1.2.0"))
		assert.Equal(t, green, res.To.Unit)
	})
	requireServing(t, a, "1.2.0")
}

// F12: pruning never removes the serving release or the rollback target.
func TestSystemdF12PruneKeepsServingAndRollbackTarget(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.editConfig(func(c *config.Config) { c.KeepReleases = 1 })
	versions := []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"}
	tarballs := map[string]string{}
	for _, v := range versions {
		tarballs[v] = release(t, v) // built before the load starts
	}
	a.mustUpgrade(tarballs["1.0.0"])
	loadDuring(t, a, func() {
		for i, v := range versions[1:] {
			a.mustUpgrade(tarballs[v])
			rels := a.releases()
			assert.Equal(t, "active", rels[v], "%v", rels)
			assert.Equal(t, "previous", rels[versions[i]], "the rollback target is kept: %v", rels)
			assert.Len(t, rels, 2, "older releases are pruned: %v", rels)
		}
		out, err := a.run("rollback", a.name)
		require.NoError(t, err, out)
	})
	requireServing(t, a, "1.2.0")
}

// F13: concurrent handoff writers during the overlap of two instances:
// every writer's last value is what is stored, and the instances' own
// counter survives.
func TestSystemdF13ConcurrentHandoffWriters(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	v1, v2 := release(t, "1.0.0"), release(t, "1.1.0")
	a.mustUpgrade(v1)
	c := control.NewClient(a.name, config.Paths{}.ControlSocket(a.name))
	defer c.Close()
	const writers, writes = 6, 150
	loadDuring(t, a, func() {
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range writes {
					if ctx.Err() != nil {
						return
					}
					err := c.HandoffPut(ctx, fmt.Sprintf("writer-%d", w), []byte(strconv.Itoa(i)))
					assert.NoError(t, err)
				}
			})
		}
		a.mustUpgrade(v2)
		a.mustUpgrade(v1)
		wg.Wait()
		stop()
	})
	all, err := c.HandoffList(t.Context())
	require.NoError(t, err)
	for w := range writers {
		assert.Equal(t, strconv.Itoa(writes-1), string(all[fmt.Sprintf("writer-%d", w)]), "writer %d", w)
	}
	b, err := os.ReadFile(filepath.Join(config.Paths{}.StateDir(a.name), "handoff.json"))
	require.NoError(t, err)
	assert.True(t, json.Valid(b), "the store file is whole")
}

// F14: instance identity is unit name + invocation id, never a PID: a
// state file naming some other live process's PID is not adopted.
func TestSystemdF14PIDReuseCannotConfuseIdentity(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	other := exec.Command("sleep", "300")
	require.NoError(t, other.Start())
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() }) // cleanup
	statePath := filepath.Join(config.Paths{}.StateDir(a.name), "state.json")
	forge := func(invocation string) {
		b, err := os.ReadFile(statePath)
		require.NoError(t, err)
		var st map[string]any
		require.NoError(t, json.Unmarshal(b, &st))
		active := st["active"].(map[string]any)
		active["pid"] = other.Process.Pid
		if invocation != "" {
			active["invocation_id"] = invocation
		}
		b, err = json.Marshal(st)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(statePath, b, 0o600))
	}
	restartParent := func() {
		pid := a.status().ParentPID
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			out, err := exec.Command(a.bin, "--json", "status", a.name).Output()
			var st control.Status
			return err == nil && json.Unmarshal(out, &st) == nil && st.ParentPID != pid && !st.Upgrading && st.Active != nil
		}, 60*time.Second, 100*time.Millisecond)
	}

	// The recorded instance still runs; its PID in the state file is another
	// process's: the instance is adopted with its real PID.
	loadDuring(t, a, func() {
		forge("")
		restartParent()
	})
	st := a.status()
	assert.NotEqual(t, other.Process.Pid, st.Active.PID)
	assert.Equal(t, show(st.Active.Unit, "MainPID"), strconv.Itoa(st.Active.PID))

	// The recorded instance is gone and its PID now belongs to another
	// process: nothing is adopted; the last active release is started.
	out, err := exec.Command("systemctl", "stop", st.Active.Unit).CombinedOutput()
	require.NoError(t, err, string(out))
	forge("00000000000000000000000000000000")
	restartParent()
	st = a.status()
	assert.NotEqual(t, other.Process.Pid, st.Active.PID)
	assert.Equal(t, "1.0.0", st.Active.Release)
	assert.NoError(t, other.Process.Signal(syscall.Signal(0)), "the other process is left alone")
	requireServing(t, a, "1.0.0")
}

// F15: nothing flips the shared listening socket to blocking mode: after
// swaps, every process holding it sees O_NONBLOCK on the shared file
// description.
func TestSystemdF15ListenerStaysNonBlocking(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	v1, v2 := release(t, "1.0.0"), release(t, "1.1.0")
	loadDuring(t, a, func() {
		for _, v := range []string{v1, v2, v1, v2} {
			a.mustUpgrade(v)
		}
	})
	holders := listenerHolders(t, a.addr)
	require.GreaterOrEqual(t, len(holders), 3, "systemd, the parent and the instance hold it: %v", holders)
	for _, h := range holders {
		assert.NotZero(t, h.flags&syscall.O_NONBLOCK, "%s has the listener in blocking mode (flags %o)", h, h.flags)
	}
	t.Logf("holders: %v", holders)
}

type holder struct {
	pid, fd int
	comm    string
	flags   int
}

func (h holder) String() string { return fmt.Sprintf("%s[%d] fd %d", h.comm, h.pid, h.fd) }

// listenerHolders finds the processes holding the TCP listener on addr
// (an IPv4 host:port) and the flags of their descriptors.
func listenerHolders(t *testing.T, addr string) []holder {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	require.True(t, ok)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	var ip [4]byte
	for i, part := range strings.Split(host, ".") {
		n, err := strconv.Atoi(part)
		require.NoError(t, err)
		ip[i] = byte(n)
	}
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p)
	f, err := os.Open("/proc/net/tcp")
	require.NoError(t, err)
	defer f.Close()
	inode := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[1] == local && fields[3] == "0A" { // 0A: LISTEN
			inode = fields[9]
		}
	}
	require.NotEmpty(t, inode, "no listener on %s in /proc/net/tcp", addr)
	var out []holder
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, link := range procs {
		if target, err := os.Readlink(link); err != nil || target != "socket:["+inode+"]" {
			continue
		}
		parts := strings.Split(link, "/")
		pid, _ := strconv.Atoi(parts[2])
		fd, _ := strconv.Atoi(parts[4])
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		if err != nil {
			continue // exited meanwhile
		}
		h := holder{pid: pid, fd: fd}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		h.comm = strings.TrimSpace(string(comm))
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				require.NoError(t, err)
				h.flags = int(n)
			}
		}
		out = append(out, h)
	}
	return out
}
