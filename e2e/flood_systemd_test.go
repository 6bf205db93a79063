package e2e_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/gate"
	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bounds the flood test asserts.
const (
	floodConns      = 20_000                 // connections the flooder opens to the control socket
	floodBrokerConn = 1_000                  // ... and to the fd broker
	statusBound     = time.Second            // root's status answers within this during the flood (but see statusExcused)
	statusHardBound = 10 * time.Second       // ... and within this, every call, whatever the machine does
	rssBound        = 40 << 20               // the parent's VmRSS stays below this
	statusSamples   = 5                      // at least this many status calls during the flood
	stallShown      = 100 * time.Millisecond // the test's own scheduling gaps it reports when a call is slow
	statusEvery     = 300 * time.Millisecond
	floodMax        = 300_000 // connections the flooder may open in all (initial plus churn)
	floodChurn      = 2_500   // connections it replaces per cycle once the parent closed them
	floodDuration   = 3 * time.Minute
)

// The flooder: with floodEnv set to a JSON floodPlan, TestMain runs
// floodMain instead of the tests. TestSystemdControlSocketFlood starts it
// as an unprivileged user.
const floodEnv = "BEAMDEPLOY_E2E_FLOOD"

// floodPlan is what the flooder does: it opens Initial connections to
// each target and keeps them open (when it runs out of descriptors, it
// closes its oldest connection for each new one); then, every cycle, it
// replaces up to Churn connections the parent closed with new ones, shared
// among the targets in proportion to Initial. It
// stops when its stdin closes, after Duration, or once it opened Max
// connections in all.
type floodPlan struct {
	Targets  []floodTarget `json:"targets"`
	Churn    int           `json:"churn"`
	Max      int           `json:"max"`
	Duration time.Duration `json:"duration"`
}

type floodTarget struct {
	Path    string `json:"path"`
	Initial int    `json:"initial"`
}

// floodReport is what the flooder saw, per target, printed as a JSON line
// after every cycle.
type floodReport struct {
	Opened     int `json:"opened"`      // connect(2) succeeded
	ConnectErr int `json:"connect_err"` // connect(2) failed (EAGAIN: the listen backlog was full)
	Forbidden  int `json:"forbidden"`   // answered "HTTP/1.1 403" and closed
	Busy       int `json:"busy"`        // answered "HTTP/1.1 503" and closed
	Closed     int `json:"closed"`      // closed without an answer (the broker's refusal), or another answer
	Held       int `json:"held"`        // no answer yet at the end of the cycle: queued, or being identified
}

// TestSystemdControlSocketFlood: an unprivileged user opens 20,000
// connections to the control socket and 1,000 to the fd broker, holds
// them, and keeps replacing those the parent closes. Meanwhile root's
// status answers within a second, an upgrade succeeds, an instance killed
// with SIGKILL is restarted by systemd and serves again (on systemd 252 it
// fetches its listeners from the flooded broker), and the parent's RSS
// stays below 40 MB. The app is under load throughout: no request fails
// except those the killed process had accepted.
func TestSystemdControlSocketFlood(t *testing.T) {
	// Instances run as nobody: unprivileged peers of the gate like the
	// flooder, in a bucket of their own.
	a := newApp(t, "--user", "nobody", "--force")
	a.mustUpgrade(release(t, "1.0.0"))
	v2 := release(t, "1.1.0")
	parentPID := show(a.name+".service", "MainPID")
	require.NotEqual(t, "0", parentPID)
	rss := watchParent(t, parentPID)
	before := rss.snapshot()
	t.Logf("parent %s before the flood: VmRSS %.1f MB, %d fds", parentPID, float64(before.rss)/(1<<20), before.fds)

	const workers = 2
	load := startLoad(t, a, workers)
	fl := startFlooder(t, floodPlan{
		Targets: []floodTarget{
			{Path: config.Paths{}.BrokerSocket(a.name), Initial: floodBrokerConn},
			{Path: config.Paths{}.ControlSocket(a.name), Initial: floodConns},
		},
		Churn: floodChurn, Max: floodMax, Duration: floodDuration,
	})
	sampler := startStatusSampler(t, a)
	stalls := startStallProbe(t)

	// The initial wave is open (or the flooder ran out of descriptors).
	require.Eventually(t, fl.opened, time.Minute, 50*time.Millisecond, "the flooder opens its connections")
	// An upgrade during the flood.
	began := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	out, err := exec.CommandContext(ctx, a.bin, "upgrade", a.name, v2).CombinedOutput()
	cancel()
	require.NoError(t, err, "upgrade during the flood: %s", out)
	upgradeTook := time.Since(began)
	requireServing(t, a, "1.1.0")
	sampler.waitFor(t, statusSamples)
	st1 := load.stop()
	t.Logf("load across the flood and the upgrade: %s", st1)
	assert.Zero(t, st1.Failed, "errors: %v", st1.Errors)
	assert.Greater(t, st1.OK, int64(100))

	// An instance restart during the flood: it gets its listeners.
	active := a.activeInstances() // from systemd: status is what is under test
	require.Len(t, active, 1)
	unit := active[0]
	invocation, pid := show(unit, "InvocationID"), show(unit, "MainPID")
	load = startLoad(t, a, workers)
	sendSignal(t, "9", pid)
	killed := time.Now()
	require.Eventually(t, func() bool {
		return show(unit, "ActiveState") == "active" && show(unit, "InvocationID") != invocation
	}, 30*time.Second, 20*time.Millisecond, "systemd restarts %s", unit)
	restartTook := time.Since(killed)
	requireServing(t, a, "1.1.0")
	time.Sleep(500 * time.Millisecond) // load on the restarted instance
	st2 := load.stop()
	t.Logf("load across the kill: %s", st2)
	// Each worker has at most one request in flight, which the killed
	// process may have accepted; nothing else fails.
	assert.LessOrEqual(t, st2.Failed, int64(workers), "errors: %v", st2.Errors)
	assert.Greater(t, st2.OK, int64(10))

	calls := sampler.stop(t)
	gaps := stalls.stop()
	reports := fl.stop(t)
	peak := rss.stop()
	lat := make([]time.Duration, len(calls))
	for i, c := range calls {
		lat[i] = c.took
	}
	t.Logf("root's status during the flood: %d calls, latencies %s", len(lat), fmtDurations(lat))
	t.Logf("this process kept off the CPU for %s or more (the machine, not the parent): %d times %s", stallShown, len(gaps), fmtStalls(gaps))
	t.Logf("upgrade during the flood: %s; restart of %s: active again %s after SIGKILL", upgradeTook.Round(time.Millisecond), unit, restartTook.Round(time.Millisecond))
	if len(calls) > 0 {
		worst := slices.MaxFunc(calls, func(a, b statusCall) int { return cmp.Compare(a.took, b.took) })
		ended := time.Now()
		t.Logf("the slowest status call, %s: the parent's threads waited for a CPU %s (summed over its threads) meanwhile; during the %s from the upgrade to the end, %s, while the parent used %s of CPU",
			fmtCalls([]statusCall{worst}), rss.waited(worst.began, worst.began.Add(worst.took)).Round(time.Millisecond),
			ended.Sub(began).Round(time.Millisecond), rss.waited(began, ended).Round(time.Millisecond), rss.used(began, ended))
	}
	t.Logf("parent %s: peak VmRSS %.1f MB, peak %d fds (before: %.1f MB, %d fds)", parentPID, float64(peak.rss)/(1<<20), peak.fds, float64(before.rss)/(1<<20), before.fds)
	for i, name := range []string{"fd broker", "control socket"} {
		r := reports[i]
		t.Logf("flooder → %s: opened %d (connect failed %d), refused with 403 %d, with 503 %d, closed without answer %d, unanswered at the end (queued or being identified) %d",
			name, r.Opened, r.ConnectErr, r.Forbidden, r.Busy, r.Closed, r.Held)
	}
	assert.GreaterOrEqual(t, reports[1].Opened, floodConns, "the flooder opened its connections to the control socket")
	assert.GreaterOrEqual(t, len(lat), statusSamples)
	// Every call answers within statusBound, unless the machine kept the
	// parent off the CPU for longer than the call's excess (statusExcused);
	// every call answers within statusHardBound; and at least half of them
	// within statusBound without excuse, so that root waiting behind the
	// flood (every call slow) fails even on a busy machine. For a call that
	// fails, the message says where the time went: the parent logs a slow
	// request with its stages (gate, reading the request, handler), and the
	// probe says whether this process, which runs the CLI, was itself kept
	// off the CPU meanwhile.
	var slow, excused []statusCall
	var waits []string
	for _, c := range calls {
		if c.took < statusBound {
			continue
		}
		waited := rss.waited(c.began, c.began.Add(c.took))
		if statusExcused(c.took, waited) {
			excused = append(excused, c)
			t.Logf("root's status call of %s excused: the parent's threads waited for a CPU %s meanwhile (the machine, not the parent)", fmtCalls([]statusCall{c}), waited.Round(time.Millisecond))
			continue
		}
		slow = append(slow, c)
		waits = append(waits, waited.Round(time.Millisecond).String())
	}
	if len(slow) > 0 || 2*(len(slow)+len(excused)) > len(calls) {
		out, _ := exec.Command("journalctl", "--no-pager", "-o", "short-precise", "-u", a.name+".service", "--grep", "slow control request").CombinedOutput() // diagnostics only
		t.Errorf("root's status calls during the flood slower than %s: %s, and %s with the parent kept off the CPU (all: %s)\nthe parent's threads waited for a CPU meanwhile, in all: %s\nthe parent's log of slow requests:\n%s\nthis process kept off the CPU: %s",
			statusBound, fmtCalls(slow), fmtCalls(excused), fmtDurations(lat), strings.Join(waits, ", "), out, fmtStalls(gaps))
	}
	assert.Less(t, peak.rss, int64(rssBound), "the parent's VmRSS during the flood")
	assert.Less(t, peak.fds, 2*(gate.DefaultTotal+gate.DefaultBacklog), "the parent's descriptors during the flood")
	requireServing(t, a, "1.1.0")
}

// statusExcused reports whether a status call that took took (at least
// statusBound) is the machine's doing rather than the parent's: the
// parent's threads waited for a CPU, summed over them, for at least the
// call's time beyond statusBound meanwhile, and the call still answered
// within statusHardBound. On a machine whose cores other processes keep
// busy, the kernel can hold the parent off the CPU for seconds; nothing in
// beamdeploy can prevent that (README, "Not there yet").
func statusExcused(took, waited time.Duration) bool {
	return took < statusHardBound && waited >= took-statusBound
}

// fmtDurations formats durations rounded to the millisecond.
func fmtDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(s, " ")
}

// fmtCalls formats status calls: when each began, and how long it took.
func fmtCalls(cs []statusCall) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.took.Round(time.Millisecond).String() + " at " + c.began.Format("15:04:05.000")
	}
	return strings.Join(s, ", ")
}

// fmtStalls formats scheduling gaps like fmtCalls.
func fmtStalls(gs []stall) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = g.gap.Round(time.Millisecond).String() + " at " + g.at.Format("15:04:05.000")
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// stall is a time the test process was not scheduled: a tick due at at
// came gap late.
type stall struct {
	at  time.Time
	gap time.Duration
}

// stallProbe records the test process's own scheduling gaps of stallShown
// or more: a machine too busy to run this process runs the CLI late too.
type stallProbe struct {
	mu   sync.Mutex // guards gaps
	gaps []stall
	quit chan struct{}
	done chan struct{}
}

func startStallProbe(t *testing.T) *stallProbe {
	p := &stallProbe{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		const every = 10 * time.Millisecond
		tick := time.NewTicker(every)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-p.quit:
				return
			case now := <-tick.C:
				if late := now.Sub(last) - every; late >= stallShown {
					p.mu.Lock()
					p.gaps = append(p.gaps, stall{at: last.Add(every), gap: late})
					p.mu.Unlock()
				}
				last = now
			}
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *stallProbe) stop() []stall {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.gaps)
}

// loadRun is loadgen running in the background.
type loadRun struct {
	cancel context.CancelFunc
	done   chan loadgen.Stats
}

func startLoad(t *testing.T, a *app, workers int) *loadRun {
	ctx, cancel := context.WithCancel(t.Context())
	l := &loadRun{cancel: cancel, done: make(chan loadgen.Stats, 1)}
	go func() {
		l.done <- loadgen.Run(ctx, loadgen.Options{URL: "http://" + a.addr + "/", Workers: workers, Duration: 3 * time.Minute, MaxRequests: 500_000})
	}()
	t.Cleanup(cancel)
	return l
}

func (l *loadRun) stop() loadgen.Stats {
	l.cancel()
	return <-l.done
}

// parentSample is the parent's VmRSS (bytes) and open descriptors, and
// how long its threads have waited for a CPU in all (run queue delay, from
// /proc/PID/task/*/schedstat).
type parentSample struct {
	at       time.Time
	rss      int64
	fds      int
	runDelay time.Duration
	cpu      time.Duration // user and system time so far (utime + stime)
}

// parentWatch samples the parent's memory and descriptors every 50 ms and
// keeps the peaks, and the run queue delays.
type parentWatch struct {
	pid     string
	mu      sync.Mutex // guards peak, samples
	peak    parentSample
	samples []parentSample
	quit    chan struct{}
	done    chan struct{}
}

func watchParent(t *testing.T, pid string) *parentWatch {
	w := &parentWatch{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	first := w.snapshot()
	require.NotZero(t, first.rss, "VmRSS of the parent %s", pid)
	w.peak = first
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
			s := w.snapshot()
			w.mu.Lock()
			w.peak.rss, w.peak.fds = max(w.peak.rss, s.rss), max(w.peak.fds, s.fds)
			w.samples = append(w.samples, s)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *parentWatch) snapshot() parentSample {
	s := parentSample{at: time.Now()}
	if b, err := os.ReadFile("/proc/" + w.pid + "/stat"); err == nil { // a gone parent reads as zero
		// utime and stime are fields 14 and 15, in clock ticks (USER_HZ,
		// 100 on Linux); the fields after the command name start with 3.
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			s.cpu = time.Duration(ut+st) * 10 * time.Millisecond
		}
	}
	tasks, _ := os.ReadDir("/proc/" + w.pid + "/task") // as below
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/" + w.pid + "/task/" + task.Name() + "/schedstat") // a thread gone reads as zero
		if f := strings.Fields(string(b)); len(f) >= 2 {
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			s.runDelay += time.Duration(ns)
		}
	}
	b, _ := os.ReadFile("/proc/" + w.pid + "/status") // a gone parent reads as zero
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				s.rss = kb << 10
			}
		}
	}
	ents, _ := os.ReadDir("/proc/" + w.pid + "/fd") // as above
	s.fds = len(ents)
	return s
}

// waited returns how long the parent's threads waited for a CPU, summed
// over its threads, between from and to (at the sampling's resolution,
// within the time it was watched).
func (w *parentWatch) waited(from, to time.Time) time.Duration {
	first, last := w.between(from, to)
	return last.runDelay - first.runDelay
}

// used returns the CPU time the parent used between from and to.
func (w *parentWatch) used(from, to time.Time) time.Duration {
	first, last := w.between(from, to)
	return last.cpu - first.cpu
}

// between returns the samples that bracket from and to.
func (w *parentWatch) between(from, to time.Time) (parentSample, parentSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first, last *parentSample
	for i := range w.samples {
		s := &w.samples[i]
		if !s.at.After(from) {
			first = s
		}
		if last == nil && !s.at.Before(to) {
			last = s
		}
	}
	if len(w.samples) == 0 {
		return parentSample{}, parentSample{}
	}
	if first == nil {
		first = &w.samples[0]
	}
	if last == nil {
		last = &w.samples[len(w.samples)-1]
	}
	return *first, *last
}

func (w *parentWatch) stop() parentSample {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// statusSampler runs root's `beamdeploy status` every statusEvery and
// records how long each took.
type statusSampler struct {
	mu    sync.Mutex // guards calls, errs
	calls []statusCall
	errs  []string
	quit  chan struct{}
	done  chan struct{}
}

func startStatusSampler(t *testing.T, a *app) *statusSampler {
	s := &statusSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), statusHardBound)
			began := time.Now()
			out, err := exec.CommandContext(ctx, a.bin, "--json", "status", a.name).CombinedOutput()
			took := time.Since(began)
			cancel()
			s.mu.Lock()
			s.calls = append(s.calls, statusCall{began: began, took: took})
			if err != nil {
				s.errs = append(s.errs, err.Error()+": "+string(out))
			}
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-time.After(statusEvery):
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-s.quit:
		default:
			close(s.quit)
		}
		<-s.done
	})
	return s
}

// waitFor waits until n status calls were made.
func (s *statusSampler) waitFor(t *testing.T, n int) {
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.calls) >= n
	}, time.Minute, 50*time.Millisecond, "%d status calls", n)
}

func (s *statusSampler) stop(t *testing.T) []statusCall {
	close(s.quit)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Empty(t, s.errs, "status calls failed during the flood")
	return slices.Clone(s.calls)
}

// statusCall is one `beamdeploy status`: when it began, how long it took.
type statusCall struct {
	began time.Time
	took  time.Duration
}

// flood is the running flooder process.
type flood struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	mu     sync.Mutex // guards latest
	latest []floodReport
	done   chan struct{}
	stderr strings.Builder
}

// startFlooder runs the flooder as a fresh unprivileged user (not nobody,
// whom the app's instances run as).
func startFlooder(t *testing.T, plan floodPlan) *flood {
	name := "bdflood" + strconv.Itoa(os.Getpid()%100000)
	require.NoError(t, exec.Command("useradd", "--system", "--no-create-home", name).Run())
	t.Cleanup(func() { _ = exec.Command("userdel", name).Run() }) // cleanup
	u, err := user.Lookup(name)
	require.NoError(t, err)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// A copy of the test binary the user may run (the original is in a
	// private temporary directory).
	self, err := os.Executable()
	require.NoError(t, err)
	b, err := os.ReadFile(self)
	require.NoError(t, err)
	bin := filepath.Join(filepath.Dir(beamdeployBin(t)), "e2e-flooder")
	require.NoError(t, os.WriteFile(bin, b, 0o755))

	p, err := json.Marshal(plan)
	require.NoError(t, err)
	f := &flood{done: make(chan struct{})}
	f.cmd = exec.Command(bin)
	f.cmd.Env = append(os.Environ(), floodEnv+"="+string(p))
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	f.cmd.Stderr = &f.stderr
	in, err := f.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := f.cmd.StdoutPipe()
	require.NoError(t, err)
	f.stdin = in
	require.NoError(t, f.cmd.Start())
	t.Cleanup(func() {
		_ = f.stdin.Close() // tells the flooder to stop
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			_ = f.cmd.Process.Kill() // the flooder we started
			<-f.done
		}
	})
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r []floodReport
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			f.mu.Lock()
			f.latest = r
			f.mu.Unlock()
		}
		_ = f.cmd.Wait() // the reports say what it did
	}()
	return f
}

// opened reports whether the flooder opened its initial connections: it
// reports only after that.
func (f *flood) opened() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest != nil
}

// stop ends the flooder and returns its final report.
func (f *flood) stop(t *testing.T) []floodReport {
	_ = f.stdin.Close() // tells the flooder to stop
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the flooder did not stop; stderr: %s", f.stderr.String())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.latest, 2, "flooder reports; stderr: %s", f.stderr.String())
	return f.latest
}
