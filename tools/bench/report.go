//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
)

// latency summarises successful requests' latencies in milliseconds.
type latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

type result struct {
	System    string         `json:"system"`
	Scenario  string         `json:"scenario"`
	Rate      float64        `json:"rate_rps"`
	Swaps     int            `json:"swaps"`
	SwapError string         `json:"swap_error,omitempty"`
	Sent      int            `json:"sent"`
	Failed    int            `json:"failed"`
	ByClass   map[string]int `json:"failed_by_class"`
	InWindows latency        `json:"latency_in_swap_windows"`
	Outside   latency        `json:"latency_outside"`
	WrongSlow int            `json:"slow_not_from_old_release,omitempty"` // S4: in-flight requests not answered by the old release
	ReadyMS   float64        `json:"median_ready_ms,omitempty"`
	StopMS    float64        `json:"median_stop_ms,omitempty"`
	// RestMS is what a swap spends besides start→READY and the old
	// instance's drain: staging the upload, the settle window, hooks.
	RestMS float64    `json:"median_rest_ms,omitempty"`
	SwapMS float64    `json:"median_swap_ms"`
	Pool   *poolStats `json:"idle_pool,omitempty"` // S3's idle keep-alive pool (also counted above)
	// Breakdowns: beamdeploy, where each swap's start went; Breakdown: the
	// median of each part.
	Breakdowns []breakdown      `json:"start_breakdown,omitempty"`
	Breakdown  *breakdown       `json:"median_start_breakdown,omitempty"`
	Timeline   []loadgen.Sample `json:"-"`
	Windows    [][2]time.Time   `json:"-"`
}

type report struct {
	Machine            string        `json:"machine"`
	Quick              bool          `json:"quick"`
	Swaps              int           `json:"swaps_per_scenario"`
	CapacityDirect     float64       `json:"capacity_direct_rps"`
	CapacityBeamdeploy float64       `json:"capacity_through_beamdeploy_rps"`
	Rate               float64       `json:"load_rps"`
	AppReady           float64       `json:"app_time_to_ready_ms"`
	ParentRSSKB        int           `json:"parent_rss_kb"`
	ParentExeKB        int           `json:"parent_rss_executable_kb"` // of it, the pages of the beamdeploy executable
	ParentOtherKB      int           `json:"parent_rss_other_kb"`      // the rest: heap, stacks, runtime
	ShimStartup        float64       `json:"shim_startup_ms"`          // the exec shim outside systemd: fork → its main
	ShimFetch          float64       `json:"shim_fetch_root_ms"`       // and its fetch from the fd broker as root (no identity lookup)
	Sandbox            []sandboxCost `json:"start_by_sandbox"`         // starts without load under drop-ins that turn hardening off
	ParentFDsBefore    int           `json:"parent_fds_before"`
	ParentFDs          int           `json:"parent_fds_after"`
	StagingMBps        float64       `json:"staging_mb_per_s"`
	Results            []result      `json:"results"`
}

func (r *report) add(res result) { r.Results = append(r.Results, res) }

func (r *report) beamdeployFailures() int {
	n := 0
	for _, res := range r.Results {
		if res.System == "beamdeploy" {
			n += res.Failed + res.WrongSlow
			if res.SwapError != "" {
				n++
			}
		}
	}
	return n
}

func summarise(sys, name string, sc scenario, rate float64, samples []loadgen.Sample, swaps []swapTiming, swapErr error) result {
	res := result{System: sys, Scenario: name, Rate: rate, Swaps: len(swaps), Sent: len(samples), ByClass: map[string]int{}, Timeline: samples}
	if swapErr != nil {
		res.SwapError = swapErr.Error()
	}
	var in, out []time.Duration
	var ready, stop, rest, total []time.Duration
	for _, w := range swaps {
		res.Windows = append(res.Windows, [2]time.Time{w.Begin, w.End})
		ready, stop, total = append(ready, w.Ready), append(stop, w.Stop), append(total, w.End.Sub(w.Begin))
		if w.Ready > 0 || w.Stop > 0 {
			rest = append(rest, w.End.Sub(w.Begin)-w.Ready-w.Stop)
		}
	}
	for _, s := range samples {
		if s.Class != "" {
			res.Failed++
			res.ByClass[s.Class]++
			continue
		}
		if inWindow(s, res.Windows) {
			in = append(in, s.Latency)
		} else {
			out = append(out, s.Latency)
		}
		if sc.Path != "/" && sys == "beamdeploy" && inFlightAtSwap(s, swaps) != "" && s.Release != inFlightAtSwap(s, swaps) {
			res.WrongSlow++
		}
	}
	res.InWindows, res.Outside = summary(in), summary(out)
	res.ReadyMS, res.StopMS, res.SwapMS = median(ready), median(stop), median(total)
	if len(rest) > 0 {
		res.RestMS = median(rest)
	}
	return res
}

// poolStats summarise the idle pool's requests.
type poolStats struct {
	Conns   int `json:"conns"`
	Sent    int `json:"sent"`
	Failed  int `json:"failed"`
	InDrain int `json:"sent_during_drain_on_idle_conn"` // on a connection idle >= MinIdle, while the old instance drained
}

func summarisePool(samples []loadgen.Sample, swaps []swapTiming) *poolStats {
	p := &poolStats{Conns: idlePool.Conns, Sent: len(samples)}
	for _, s := range samples {
		if s.Class != "" {
			p.Failed++
		}
		if s.IdleConn < idlePool.MinIdle {
			continue
		}
		for _, w := range swaps {
			if w.Stop > 0 && !s.Start.Before(w.End.Add(-w.Stop)) && s.Start.Before(w.End) {
				p.InDrain++
				break
			}
		}
	}
	return p
}

// merge returns a and b in one slice, in start order.
func merge(a, b []loadgen.Sample) []loadgen.Sample {
	out := append(slices.Clip(a), b...)
	slices.SortStableFunc(out, func(x, y loadgen.Sample) int { return x.Start.Compare(y.Start) })
	return out
}

// inWindow: the request overlapped a swap.
func inWindow(s loadgen.Sample, windows [][2]time.Time) bool {
	end := s.Start.Add(s.Latency)
	for _, w := range windows {
		if s.Start.Before(w[1]) && end.After(w[0]) {
			return true
		}
	}
	return false
}

// inFlightAtSwap returns the old release of the swap that started while s
// was in flight, or "".
func inFlightAtSwap(s loadgen.Sample, swaps []swapTiming) string {
	for _, w := range swaps {
		if s.Start.Before(w.Begin) && s.Start.Add(s.Latency).After(w.Begin) && w.OldRelease != "" {
			return w.OldRelease
		}
	}
	return ""
}

func summary(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	slices.Sort(d)
	at := func(p float64) float64 { return ms(d[int(p*float64(len(d)-1))]) }
	return latency{N: len(d), P50: at(0.5), P99: at(0.99), P999: at(0.999), Max: ms(d[len(d)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return ms(s[len(s)/2])
}

func machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPUs, %s/%s, kernel %s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)), runtime.Version())
}

// stagingThroughput stages a ~50 MB release and returns MB/s of tarball.
func stagingThroughput(ctx context.Context, o options, bd *bdSystem) (float64, error) {
	hello, err := os.ReadFile(o.hello)
	if err != nil {
		return 0, err
	}
	blob := make([]byte, 45<<20)
	_, _ = rand.Read(blob) // incompressible, like real binaries and assets
	dir, err := os.MkdirTemp("", "bench-stage-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	tarball := filepath.Join(dir, "hello-9.9.9.tar.gz")
	if err := writeTar(tarball, map[string][]byte{"bin/hello": hello, "data/blob": blob}); err != nil {
		return 0, err
	}
	fi, err := os.Stat(tarball)
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	if out, err := exec.CommandContext(ctx, o.bin, "stage", bd.app, tarball).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("stage: %w: %s", err, out)
	}
	return float64(fi.Size()) / 1e6 / time.Since(begin).Seconds(), nil
}

func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latency.svg"), []byte(r.svg()), 0o644)
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s. Load: open model at %.0f req/s (40%% of the app's %.0f req/s capacity, direct); %d swaps per scenario.\n\n",
		r.Machine, r.Rate, r.CapacityDirect, r.Swaps)
	fmt.Fprintf(&b, "| system | scenario | sent | failed | p50 / p99 / p99.9 / max in swap windows (ms) | p99 outside (ms) | swap (ms) = start→READY + settle etc. + drain |\n|---|---|---:|---|---|---:|---|\n")
	for _, res := range r.Results {
		failed := fmt.Sprint(res.Failed)
		if len(res.ByClass) > 0 {
			failed += " (" + classes(res.ByClass) + ")"
		}
		if res.WrongSlow > 0 {
			failed += fmt.Sprintf(", %d slow not from old release", res.WrongSlow)
		}
		if res.SwapError != "" {
			failed += ", swap error: " + strings.ReplaceAll(strings.SplitN(res.SwapError, "\n", 2)[0], "|", "/")
		}
		w := fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", res.InWindows.P50, res.InWindows.P99, res.InWindows.P999, res.InWindows.Max)
		if res.Swaps == 0 {
			w = "no swaps"
		}
		split := "" // a system that does not tell the parts (systemctl restart)
		if res.ReadyMS > 0 || res.StopMS > 0 {
			split = fmt.Sprintf(" = %.0f + %.0f + %.0f", res.ReadyMS, res.RestMS, res.StopMS)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %.1f | %.0f%s |\n",
			res.System, res.Scenario, res.Sent, failed, w, res.Outside.P99, res.SwapMS, split)
	}
	fmt.Fprintf(&b, "\nbeamdeploy: steady-state throughput %.0f req/s vs %.0f direct (%.2fx); parent RSS %.1f MB, fds %d before and %d after all swaps; staging %.0f MB/s; app time-to-READY %.1f ms.\n",
		r.CapacityBeamdeploy, r.CapacityDirect, r.CapacityBeamdeploy/max(r.CapacityDirect, 1), float64(r.ParentRSSKB)/1024, r.ParentFDsBefore, r.ParentFDs, r.StagingMBps, r.AppReady)
	for _, res := range r.Results {
		if p := res.Pool; p != nil {
			fmt.Fprintf(&b, "%s %s: idle pool of %d keep-alive connections, each idle %s to %s between POSTs: %d sent, %d failed; %d sent on a connection idle at least %s while the old instance drained.\n",
				res.System, res.Scenario, p.Conns, idlePool.MinIdle, idlePool.MaxIdle, p.Sent, p.Failed, p.InDrain, idlePool.MinIdle)
		}
	}
	fmt.Fprintf(&b, "beamdeploy: parent RSS %.1f MB after all swaps (target %d MB: %s): the beamdeploy executable's mapped pages %.1f MB, the rest (heap, stacks, runtime) %.1f MB.\n",
		float64(r.ParentRSSKB)/1024, rssTargetKB/1024, verdict(r.ParentRSSKB <= rssTargetKB), float64(r.ParentExeKB)/1024, float64(r.ParentOtherKB)/1024)
	for _, res := range r.Results {
		if res.System == "beamdeploy" && res.ReadyMS > 0 {
			over := res.ReadyMS - r.AppReady
			fmt.Fprintf(&b, "beamdeploy %s: median start→READY %.1f ms (control-plane overhead %.1f ms over the app's own %.1f ms; target %.0f ms: %s), stop→gone %.1f ms.\n",
				res.Scenario, res.ReadyMS, over, r.AppReady, ms(overheadTarget), verdict(over <= ms(overheadTarget)), res.StopMS)
		}
		if bd := res.Breakdown; res.System == "beamdeploy" && bd != nil {
			fmt.Fprintf(&b, "beamdeploy %s: medians of %d swaps: %s.\n", res.Scenario, len(res.Breakdowns), bd)
		}
	}
	fmt.Fprintf(&b, "The exec shim started outside systemd (fork → its main: exec, Go runtime, package init) takes %.1f ms, and its fetch from the fd broker as root %.1f ms: the rest of fork→shim main is systemd setting up the unit's sandbox.\n",
		r.ShimStartup, r.ShimFetch)
	for _, c := range r.Sandbox {
		fmt.Fprintf(&b, "Without load, %s (median of %d swaps): fork→shim main %.1f ms; %s.\n", c.Name, c.Swaps, c.Breakdown.Sandbox, c.Breakdown)
	}
	return b.String()
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

func classes(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
