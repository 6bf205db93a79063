package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// history prints newest first, a short checksum, who asked (or - for
// records from before audits) and the message.
func TestHistoryTable(t *testing.T) {
	uid := 1001
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	h := []swap.Result{
		{ID: "old", Release: "0.9.0", Started: t0, OK: true},
		{ID: "a", Release: "1.0.0", Started: t0.Add(time.Hour), OK: true, SHA256: strings.Repeat("ab", 32),
			Audit: swap.Audit{Command: "upgrade", User: "alice", UID: &uid, Message: "fix login"}},
		{ID: "b", Kind: swap.KindHot, Release: "1.0.1", Started: t0.Add(2 * time.Hour), Error: "boom",
			Audit: swap.Audit{Command: "hot-upgrade", UID: &uid}},
	}
	got := newestFirst(h, 2)
	require.Len(t, got, 2)
	assert.Equal(t, []string{"b", "a"}, []string{got[0].ID, got[1].ID})
	assert.Len(t, newestFirst(h, 0), 3)
	assert.NotNil(t, newestFirst(nil, 5), "--json prints [] rather than null")

	var out bytes.Buffer
	require.NoError(t, printHistory(&out, newestFirst(h, 0)))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4, out.String())
	assert.Regexp(t, `^TIME\s+COMMAND\s+KIND\s+RELEASE\s+OUTCOME\s+USER\s+SHA256\s+MESSAGE$`, lines[0])
	assert.Regexp(t, `hot-upgrade\s+hot\s+1\.0\.1\s+failed\s+uid 1001\s+-\s+-$`, lines[1])
	assert.Regexp(t, `upgrade\s+blue-green\s+1\.0\.0\s+ok\s+alice \(uid 1001\)\s+abababababab\s+fix login$`, lines[2])
	assert.Regexp(t, `-\s+blue-green\s+0\.9\.0\s+ok\s+-\s+-\s+-$`, lines[3])
}
