//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
)

// soakLoad is the load of a soak: new connections per GET and keep-alive
// POSTs, modest rates, as a long run keeps every request's sample.
var soakLoad = []loadgen.OpenOptions{
	{Method: "GET", KeepAlive: false, Rate: 400},
	{Method: "POST", Body: []byte(`{"soak":true}`), KeepAlive: true, Rate: 600, IdleTimeout: loadIdleTimeout},
}

// soakMax bounds a soak's run time whatever its swap count.
const soakMax = 45 * time.Minute

// soakSample is the parent's footprint after one swap.
type soakSample struct {
	Swap  int     `json:"swap"`
	At    float64 `json:"at_s"`
	RSSKB int     `json:"rss_kb"`
	FDs   int     `json:"fds"`
}

// soakReport is what `make soak` writes to bench/soak.json.
type soakReport struct {
	Machine        string         `json:"machine"`
	Swaps          int            `json:"swaps"`
	SwapsFailed    int            `json:"swaps_failed"`
	FirstSwapError string         `json:"first_swap_error,omitempty"`
	Duration       float64        `json:"duration_s"`
	Sent           int            `json:"sent"`
	Failed         int            `json:"failed"`
	ByClass        map[string]int `json:"failed_by_class"`
	ReadyMS        float64        `json:"median_ready_ms"`
	SwapMS         float64        `json:"median_swap_ms"`
	RSSSlope       float64        `json:"rss_kb_per_100_swaps"`
	FDSlope        float64        `json:"fds_per_100_swaps"`
	Samples        []soakSample   `json:"samples"`
}

// runSoak swaps n times back to back under load and samples the parent's
// RSS and open descriptors after every swap. It fails if a request or a
// swap failed.
func runSoak(ctx context.Context, o options, n int) error {
	bd, err := newBD(ctx, o.bin, o.dist, "127.0.0.1:18200")
	if err != nil {
		return fmt.Errorf("set up beamdeploy: %w", err)
	}
	defer bd.Close()
	rep := &soakReport{Machine: machine(), ByClass: map[string]int{}}
	ctx, cancel := context.WithTimeout(ctx, soakMax)
	defer cancel()
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var mu sync.Mutex // guards samples
	var samples []loadgen.Sample
	var wg sync.WaitGroup
	for _, lo := range soakLoad {
		lo.URL, lo.Duration, lo.Timeout = bd.URL()+"/", soakMax, 15*time.Second
		wg.Go(func() {
			s := loadgen.RunOpen(lctx, lo)
			mu.Lock()
			samples = append(samples, s...)
			mu.Unlock()
		})
	}
	time.Sleep(time.Second)
	begin := time.Now()
	var ready, total []time.Duration
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		t, err := bd.Swap(ctx)
		rep.Swaps++
		if err != nil {
			rep.SwapsFailed++
			if rep.FirstSwapError == "" {
				rep.FirstSwapError = err.Error()
			}
		} else {
			ready, total = append(ready, t.Ready), append(total, t.End.Sub(t.Begin))
		}
		if rss, fds, err := bd.parentStats(); err == nil {
			rep.Samples = append(rep.Samples, soakSample{Swap: i + 1, At: time.Since(begin).Seconds(), RSSKB: rss, FDs: fds})
		}
		if (i+1)%100 == 0 {
			fmt.Fprintf(os.Stderr, "soak: %d swaps in %s, %d failed\n", i+1, time.Since(begin).Round(time.Second), rep.SwapsFailed)
		}
	}
	rep.Duration = time.Since(begin).Seconds()
	time.Sleep(time.Second)
	stopLoad()
	wg.Wait()
	for _, s := range samples {
		rep.Sent++
		if s.Class != "" {
			rep.Failed++
			rep.ByClass[s.Class]++
		}
	}
	rep.ReadyMS, rep.SwapMS = median(ready), median(total)
	rep.RSSSlope = 100 * slope(rep.Samples, func(s soakSample) float64 { return float64(s.RSSKB) })
	rep.FDSlope = 100 * slope(rep.Samples, func(s soakSample) float64 { return float64(s.FDs) })
	if err := rep.write(o.out); err != nil {
		return err
	}
	fmt.Print(rep.text())
	if rep.Failed > 0 || rep.SwapsFailed > 0 || rep.Swaps < n {
		return fmt.Errorf("soak: %d of %d swaps done, %d failed; %d of %d requests failed", rep.Swaps, n, rep.SwapsFailed, rep.Failed, rep.Sent)
	}
	return nil
}

// slope is the least-squares slope of y over the swap number, leaving out
// the first tenth of the samples (start-up: the heap and the runtime's
// pools grow to their working size).
func slope(ss []soakSample, y func(soakSample) float64) float64 {
	ss = ss[len(ss)/10:]
	if len(ss) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range ss {
		x := float64(s.Swap)
		sx, sy, sxx, sxy = sx+x, sy+y(s), sxx+x*x, sxy+x*y(s)
	}
	n := float64(len(ss))
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func (r *soakReport) text() string {
	var b strings.Builder
	first, last := soakSample{}, soakSample{}
	if len(r.Samples) > 0 {
		first, last = r.Samples[0], r.Samples[len(r.Samples)-1]
	}
	fmt.Fprintf(&b, "Machine: %s.\n", r.Machine)
	fmt.Fprintf(&b, "soak: %d swaps back to back in %.1f min, %d failed; median start→READY %.1f ms, swap %.0f ms.\n",
		r.Swaps, r.Duration/60, r.SwapsFailed, r.ReadyMS, r.SwapMS)
	fmt.Fprintf(&b, "soak: %d requests (new connection per GET and keep-alive POSTs), %d failed", r.Sent, r.Failed)
	if r.Failed > 0 {
		fmt.Fprintf(&b, " (%s)", classes(r.ByClass))
	}
	fmt.Fprintf(&b, ".\nsoak: parent RSS %.1f MB after swap %d, %.1f MB after swap %d: slope %+.1f kB per 100 swaps; fds %d -> %d: slope %+.2f per 100 swaps (first tenth left out).\n",
		float64(first.RSSKB)/1024, first.Swap, float64(last.RSSKB)/1024, last.Swap, r.RSSSlope, first.FDs, last.FDs, r.FDSlope)
	if r.FirstSwapError != "" {
		fmt.Fprintf(&b, "soak: first swap error: %s\n", r.FirstSwapError)
	}
	return b.String()
}

func (r *soakReport) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "soak.json"), append(b, '\n'), 0o644)
}
