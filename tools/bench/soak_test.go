//go:build linux

package main

import (
	"math"
	"testing"
)

func TestSlopeLeavesOutTheFirstTenth(t *testing.T) {
	var ss []soakSample
	for i := 1; i <= 100; i++ {
		rss := 3*i + 1000
		if i <= 10 {
			rss = 5000 * i // start-up growth: left out
		}
		ss = append(ss, soakSample{Swap: i, RSSKB: rss, FDs: 13})
	}
	if got := slope(ss, func(s soakSample) float64 { return float64(s.RSSKB) }); math.Abs(got-3) > 1e-9 {
		t.Errorf("RSS slope = %v, want 3 per swap", got)
	}
	if got := slope(ss, func(s soakSample) float64 { return float64(s.FDs) }); got != 0 {
		t.Errorf("fd slope = %v, want 0", got)
	}
	if got := slope(ss[:1], func(s soakSample) float64 { return 1 }); got != 0 {
		t.Errorf("slope of one sample = %v, want 0", got)
	}
}
