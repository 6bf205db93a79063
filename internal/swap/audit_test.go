package swap_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A swap's Result and intent carry who asked and the target's checksum,
// for successful and failed swaps alike; a swap that failed before it
// chose a release has no checksum.
func TestAuditAndChecksumRecorded(t *testing.T) {
	uid := 1001
	who := swap.Audit{Command: "upgrade", User: "alice", UID: &uid, Message: "fix login"}
	sums := map[string]string{"1.0.0": "aa", "1.1.0": "bb"}
	var intents []swap.Intent
	rt := &fakeRuntime{}
	m := newMachine(rt, swap.Options{
		Releases: &fakePins{sums: sums},
		Save: func(s swap.State) error {
			if s.Swap != nil {
				intents = append(intents, *s.Swap)
			}
			return nil
		},
	})

	res, err := m.Swap(t.Context(), swap.Request{Release: "1.0.0", Audit: who}, nil)
	require.NoError(t, err)
	assert.Equal(t, who, res.Audit)
	assert.Equal(t, "aa", res.SHA256)
	assert.Equal(t, "aa", m.Status().Last.SHA256)
	require.NotEmpty(t, intents)
	assert.Equal(t, who, intents[0].Audit, "the intent names who asked from the start")
	last := intents[len(intents)-1]
	assert.Equal(t, "aa", last.SHA256)

	rt.startFn = func(_ context.Context, _ swap.Color, _ string) error { return errors.New("boom") }
	res, err = m.Swap(t.Context(), swap.Request{Release: "1.1.0", Audit: swap.Audit{Command: "reload"}}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	assert.Equal(t, "reload", res.Command)
	assert.Equal(t, "bb", res.SHA256, "a failed swap still names what it tried")

	res, err = m.Swap(t.Context(), swap.Request{Prepare: func(context.Context) (string, error) { return "", errors.New("no") }, Audit: who}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	assert.Empty(t, res.SHA256)
	assert.Equal(t, "alice", res.User)
}

// The fields are flat in JSON, and a record written before audits (no
// user, uid, message or sha256) still decodes, with no uid.
func TestAuditJSON(t *testing.T) {
	root := 0
	b, err := json.Marshal(swap.Result{ID: "s", SHA256: "cc", Audit: swap.Audit{User: "root", UID: &root, Message: "m"}})
	require.NoError(t, err)
	var flat map[string]any
	require.NoError(t, json.Unmarshal(b, &flat))
	assert.Equal(t, "root", flat["user"])
	assert.Equal(t, float64(0), flat["uid"], "root's uid 0 is written")
	assert.Equal(t, "m", flat["message"])
	assert.Equal(t, "cc", flat["sha256"])

	var old swap.Result
	require.NoError(t, json.Unmarshal([]byte(`{"id":"s0","release":"1.0.0","ok":true}`), &old))
	assert.Nil(t, old.UID)
	assert.Equal(t, swap.Audit{}, old.Audit)
}

// A swap interrupted by a parent restart is recorded with who asked.
func TestConvergeKeepsAudit(t *testing.T) {
	uid := 7
	blue := inst("app@blue.service", "1.0.0", "b1", 10)
	in := &swap.Intent{ID: "s1", Phase: swap.PhaseStarting, Release: "1.1.0", Color: swap.Green, From: &blue,
		SHA256: "dd", Audit: swap.Audit{Command: "rollback", User: "bob", UID: &uid, Message: "bad build"}}
	p := swap.Converge(swap.State{Active: &blue, Swap: in}, []swap.Instance{blue})
	require.NotNil(t, p.Interrupted)
	assert.Equal(t, in.Audit, p.Interrupted.Audit)
	assert.Equal(t, "dd", p.Interrupted.SHA256)
}
