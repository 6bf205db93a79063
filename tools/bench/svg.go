//go:build linux

package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// svg plots latency over time for each system's S2 run, swap windows
// shaded, one panel per system.
func (r *report) svg() string {
	var panels []result
	for _, res := range r.Results {
		if strings.HasPrefix(res.Scenario, "S2") {
			panels = append(panels, res)
		}
	}
	const w, h, pad = 900, 160, 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", w, (h+pad)*len(panels)+pad)
	for i, res := range panels {
		panel(&b, res, pad, pad+i*(h+pad), w-2*pad, h)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func panel(b *strings.Builder, res result, x0, y0, w, h int) {
	if len(res.Timeline) == 0 {
		return
	}
	start := res.Timeline[0].Start
	span := res.Timeline[len(res.Timeline)-1].Start.Sub(start).Seconds()
	maxMS := math.Max(1, res.InWindows.Max)
	maxMS = math.Max(maxMS, res.Outside.Max)
	yOf := func(d time.Duration) float64 { // log scale, 0.1 ms .. max
		v := math.Log10(math.Max(ms(d), 0.1)/0.1) / math.Log10(maxMS/0.1)
		return float64(y0+h) - v*float64(h)
	}
	xOf := func(t time.Time) float64 { return float64(x0) + t.Sub(start).Seconds()/math.Max(span, 1e-9)*float64(w) }
	fmt.Fprintf(b, `<text x="%d" y="%d">%s — %s (log latency, max %.0f ms; swaps shaded; failures red)</text>`+"\n", x0, y0-6, res.System, res.Scenario, maxMS)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", x0, y0, w, h)
	for _, win := range res.Windows {
		fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#fd8" opacity="0.6"/>`+"\n", xOf(win[0]), y0, math.Max(1, xOf(win[1])-xOf(win[0])), h)
	}
	step := max(1, len(res.Timeline)/3000)
	for i := 0; i < len(res.Timeline); i += step {
		s := res.Timeline[i]
		color := "#36c"
		if s.Class != "" {
			color = "#d00"
		}
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="1" fill="%s"/>`+"\n", xOf(s.Start), yOf(s.Latency), color)
	}
}
