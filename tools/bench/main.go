//go:build linux

// Command beamdeploy-bench is what `make bench` runs inside the sandboxed
// systemd: the same app and the same open-model load against beamdeploy
// swaps, `systemctl restart` of a socket-activated service, and the
// per-instance SO_REUSEPORT overlap (tcp_migrate_req 0 and 1). It writes
// bench/results.json, bench/results.md and bench/latency.svg. With -soak N
// it swaps beamdeploy N times under load instead (make soak) and writes
// bench/soak.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
)

type options struct {
	bin, hello, dist, out string
	quick, gate           bool
	soak                  int
	swaps                 int
	interval              time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "beamdeploy", "bin/beamdeploy", "beamdeploy binary")
	flag.StringVar(&o.hello, "hello", "bin/hello", "examples/hello binary (for the alternatives)")
	flag.StringVar(&o.dist, "dist", "dist", "directory with hello-1.0.0.tar.gz and hello-1.1.0.tar.gz")
	flag.StringVar(&o.out, "out", "bench", "directory for the reports")
	flag.BoolVar(&o.quick, "quick", os.Getenv("QUICK") == "1", "10 swaps per scenario instead of 100 (also QUICK=1)")
	flag.BoolVar(&o.gate, "gate", os.Getenv("GATE") == "1", "beamdeploy's scenarios only, without the alternatives (what make test gates on; also GATE=1)")
	flag.IntVar(&o.soak, "soak", 0, "instead of the benchmark, swap beamdeploy this many times back to back under load and sample the parent's RSS and fds (make soak)")
	flag.Parse()
	o.swaps, o.interval = 100, 400*time.Millisecond
	if o.quick {
		o.swaps = 10
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	for _, p := range []*string{&o.bin, &o.hello, &o.dist, &o.out} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	// The load generator runs on CPU 1; the apps are pinned to CPU 0.
	_ = unix.SchedSetaffinity(0, cpuSet(1)) // best effort on 1-CPU machines
	if o.soak > 0 {
		return runSoak(ctx, o, o.soak)
	}
	rep := &report{Quick: o.quick, Swaps: o.swaps, Machine: machine()}
	bd, err := newBD(ctx, o.bin, o.dist, "127.0.0.1:18200")
	if err != nil {
		return fmt.Errorf("set up beamdeploy: %w", err)
	}
	defer bd.Close()
	if _, fds, err := bd.parentStats(); err == nil {
		rep.ParentFDsBefore = fds
	}
	if rep.ShimStartup, rep.ShimFetch, err = shimStartup(ctx, o.bin, bd.app, 20); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "bench: beamdeploy: the start's cost by sandbox settings, no load")
	if rep.Sandbox, err = measureSandbox(ctx, bd, max(3, o.swaps/10)); err != nil {
		return err
	}
	if err := calibrate(ctx, o, bd, rep); err != nil {
		return err
	}
	if err := runAll(ctx, o, bd, rep); err != nil {
		return err
	}
	if err := measureBD(ctx, o, bd, rep); err != nil {
		return err
	}
	if err := rep.write(o.out); err != nil {
		return err
	}
	fmt.Print(rep.markdown())
	if lost := rep.beamdeployFailures(); lost > 0 {
		return fmt.Errorf("beamdeploy lost %d requests", lost)
	}
	return nil
}

// calibrate finds the app's capacity (closed loop, direct) and sets the
// open-model rate at 40% of it.
func calibrate(ctx context.Context, o options, bd *bdSystem, rep *report) error {
	rs, err := newReuse(o.hello, "127.0.0.1:18203", 0)
	if err != nil {
		return fmt.Errorf("start hello directly: %w", err)
	}
	direct := throughput(ctx, rs.URL())
	rs.Close()
	through := throughput(ctx, bd.URL())
	rep.CapacityDirect, rep.CapacityBeamdeploy = direct, through
	rep.Rate = min(0.4*direct, 4000)
	appReady = append(appReady, rs.readyTimes...)
	return nil
}

func throughput(ctx context.Context, url string) float64 {
	d := 3 * time.Second
	st := loadgen.Run(ctx, loadgen.Options{URL: url, KeepAlive: true, Workers: 16, Duration: d, MaxRequests: 10_000_000})
	return float64(st.OK) / d.Seconds()
}

// appReady collects how long hello takes from exec to READY=1 when run
// directly: the app's own share of a swap's start.
var appReady []time.Duration

type scenario struct {
	Name      string
	Path      string
	Method    string
	KeepAlive bool
	Rate      float64 // fraction of the calibrated rate, or absolute when > 1
	IdlePool  bool    // also run the idle keep-alive pool (idlePool)
}

func scenarios() []scenario {
	return []scenario{
		{Name: "S1 new connection per request", Path: "/", KeepAlive: false, Rate: 0.5},
		{Name: "S2 keep-alive GET", Path: "/", KeepAlive: true, Rate: 1},
		{Name: "S3 keep-alive POST + idle pool", Path: "/", Method: "POST", KeepAlive: true, Rate: 1, IdlePool: true},
		{Name: "S4 slow requests (2 s)", Path: "/?sleep=2s", KeepAlive: true, Rate: 50},
	}
}

// The open-model clients close a keep-alive connection idle for
// loadIdleTimeout, as pooling clients do (Go's default is 90 s); a
// draining instance waits for that (or for the client's next request)
// rather than close an idle connection itself.
const loadIdleTimeout = 2 * time.Second

// idlePool is S3's pool of keep-alive clients that leave their connection
// idle between requests, longer than loadIdleTimeout: they reuse
// connections at any moment of a drain, so the race between a server
// closing an idle connection and a client sending on it is exercised.
var idlePool = loadgen.IdlePoolOptions{Conns: 64, MinIdle: 500 * time.Millisecond, MaxIdle: 5 * time.Second, Timeout: 15 * time.Second}

func runAll(ctx context.Context, o options, bd *bdSystem, rep *report) error {
	base := scenarios()[1]
	rep.add(runScenario(ctx, o, bd, base, rep.Rate, 0, "baseline (no swaps)"))
	systems := []func() (system, error){
		func() (system, error) { return bd, nil },
	}
	if !o.gate {
		systems = append(systems,
			func() (system, error) { return newRestart(ctx, o.hello, "127.0.0.1:18201") },
			func() (system, error) { return newReuse(o.hello, "127.0.0.1:18202", 0) },
			func() (system, error) { return newReuse(o.hello, "127.0.0.1:18204", 1) },
		)
	}
	for _, mk := range systems {
		sys, err := mk()
		if err != nil {
			return err
		}
		for _, sc := range scenarios() {
			rate := sc.Rate
			if rate <= 1 {
				rate *= rep.Rate
			}
			rep.add(runScenario(ctx, o, sys, sc, rate, o.swaps, ""))
		}
		if sys != bd {
			sys.Close()
		}
		if rs, ok := sys.(*reuseSystem); ok {
			appReady = append(appReady, rs.readyTimes...)
		}
	}
	rep.AppReady = median(appReady)
	return nil
}

// runScenario runs the load from a second before the first of swaps swaps
// until a second after the last one (each swap lasts as long as its drain).
func runScenario(ctx context.Context, o options, sys system, sc scenario, rate float64, swaps int, label string) result {
	fmt.Fprintf(os.Stderr, "bench: %s / %s: %d swaps at %.0f req/s\n", sys.Name(), sc.Name, swaps, rate)
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	url := sys.URL() + sc.Path
	var samples, pool []loadgen.Sample
	var wg sync.WaitGroup
	wg.Go(func() {
		samples = loadgen.RunOpen(lctx, loadgen.OpenOptions{URL: url, Method: sc.Method, Body: postBody(sc), KeepAlive: sc.KeepAlive,
			Rate: rate, Duration: time.Duration(swaps+1) * time.Minute, Timeout: 15 * time.Second, IdleTimeout: loadIdleTimeout})
	})
	if sc.IdlePool {
		wg.Go(func() {
			po := idlePool
			po.URL, po.Method, po.Body = url, sc.Method, postBody(sc)
			pool = loadgen.RunIdlePool(lctx, po)
		})
	}
	time.Sleep(time.Second)
	var swapsDone []swapTiming
	var swapErr error
	for range swaps {
		t, err := sys.Swap(ctx)
		if err != nil {
			swapErr = err
			break
		}
		swapsDone = append(swapsDone, t)
		time.Sleep(max(0, o.interval-t.End.Sub(t.Begin)))
	}
	time.Sleep(time.Second)
	stopLoad()
	wg.Wait()
	if label == "" {
		label = sc.Name
	}
	res := summarise(sys.Name(), label, sc, rate, merge(samples, pool), swapsDone, swapErr)
	if sc.IdlePool {
		res.Pool = summarisePool(pool, swapsDone)
	}
	if bd, ok := sys.(*bdSystem); ok && len(swapsDone) > 0 {
		res.Breakdowns = startBreakdowns(ctx, bd, swapsDone)
		if len(res.Breakdowns) > 0 {
			m := medianBreakdown(res.Breakdowns)
			res.Breakdown = &m
		}
	}
	return res
}

// startBreakdowns reads where each swap's start went and prints one line
// per swap.
func startBreakdowns(ctx context.Context, bd *bdSystem, swaps []swapTiming) []breakdown {
	var ps []pending
	for _, t := range swaps {
		if t.Start != nil {
			ps = append(ps, *t.Start)
		}
	}
	bs, err := breakdowns(ctx, bd.app, swaps[0].Begin, ps)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: no start breakdown:", err)
	}
	for i, b := range bs {
		fmt.Fprintf(os.Stderr, "bench: swap %d: %s\n", i+1, b)
	}
	if len(bs) < len(swaps) {
		fmt.Fprintf(os.Stderr, "bench: start breakdown of %d of %d swaps (the journal or the unit's timestamps lacked the others)\n", len(bs), len(swaps))
	}
	return bs
}

func postBody(sc scenario) []byte {
	if sc.Method == "POST" {
		return []byte(`{"bench":true}`)
	}
	return nil
}

// measureBD reads the parent's footprint and the staging throughput.
func measureBD(ctx context.Context, o options, bd *bdSystem, rep *report) error {
	rss, fds, err := bd.parentStats()
	if err != nil {
		return fmt.Errorf("parent stats: %w", err)
	}
	rep.ParentRSSKB, rep.ParentFDs = rss, fds
	if rep.ParentExeKB, rep.ParentOtherKB, err = bd.parentMemory(); err != nil {
		return fmt.Errorf("parent memory: %w", err)
	}
	mbps, err := stagingThroughput(ctx, o, bd)
	if err != nil {
		return err
	}
	rep.StagingMBps = mbps
	return nil
}
