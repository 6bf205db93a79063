//go:build linux

package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The swap column splits a swap into start→READY, the rest (staging,
// settle, hooks) and the old instance's drain where the system tells them.
func TestMarkdownSplitsTheSwap(t *testing.T) {
	t0 := time.Now()
	ms := time.Millisecond
	bd := summarise("beamdeploy", "S1", scenario{Path: "/"}, 100, nil, []swapTiming{
		{Begin: t0, End: t0.Add(600 * ms), Ready: 60 * ms, Stop: 20 * ms},
		{Begin: t0, End: t0.Add(640 * ms), Ready: 70 * ms, Stop: 30 * ms},
		{Begin: t0, End: t0.Add(620 * ms), Ready: 65 * ms, Stop: 25 * ms},
	}, nil)
	restart := summarise("systemctl restart", "S1", scenario{Path: "/"}, 100, nil, []swapTiming{{Begin: t0, End: t0.Add(40 * ms)}}, nil)
	md := (&report{Results: []result{bd, restart}}).markdown()
	assert.Contains(t, md, "| 620 = 65 + 530 + 25 |")
	assert.Contains(t, md, "| 40 |", "no parts for a system that does not tell them")
	overlap := summarise("SO_REUSEPORT", "S1", scenario{Path: "/"}, 100, nil, []swapTiming{{Begin: t0, End: t0.Add(5 * ms), Ready: 4 * ms, Stop: ms}}, nil)
	assert.Contains(t, (&report{Results: []result{overlap}}).markdown(), "| 5 = 4 + 0 + 1 |", "nothing besides start and drain")
}
