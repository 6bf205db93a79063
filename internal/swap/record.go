package swap

import (
	"maps"
	"slices"
	"time"
)

// HistoryLen is how many swap results a Record keeps.
const HistoryLen = 50

// Record is what an app has deployed: when each release last became
// active, and its last swaps. It is the input of the deploy decisions
// (rollback and reload targets, retention). A Record is never modified in
// place: the machine replaces it, so a copy handed to a reader (status,
// the state file) stays as it was.
type Record struct {
	// Deployed maps each release to the last time it became active.
	Deployed map[string]time.Time `json:"deployed,omitempty"`
	// History are the last swaps, newest last, at most HistoryLen.
	History []Result `json:"history,omitempty"`
}

// activated returns r with release active since at.
func (r Record) activated(release string, at time.Time) Record {
	r.Deployed = maps.Clone(r.Deployed)
	if r.Deployed == nil {
		r.Deployed = map[string]time.Time{}
	}
	r.Deployed[release] = at.UTC()
	return r
}

// ended returns r with res as its newest swap, unless it is already.
func (r Record) ended(res Result) Record {
	if n := len(r.History); n > 0 && r.History[n-1].ID == res.ID {
		return r
	}
	h := append(slices.Clip(r.History), res)
	r.History = h[max(0, len(h)-HistoryLen):]
	return r
}

// Previous returns the rollback target: the most recently deployed
// release other than active, or "" when there is none.
func (r Record) Previous(active string) string {
	var best string
	var at time.Time
	for v, t := range r.Deployed {
		if v != active && (t.After(at) || (t.Equal(at) && v > best)) {
			best, at = v, t
		}
	}
	return best
}

// ReloadTarget returns what a reload swaps to, given the staged releases
// (oldest first) and the active one (""when none): the newest staged
// release never deployed, or else a fresh instance of the active release,
// or else the newest staged one. It returns "" when nothing is staged or
// active.
func (r Record) ReloadTarget(staged []string, active string) string {
	for _, v := range slices.Backward(staged) {
		if _, ok := r.Deployed[v]; !ok {
			return v
		}
	}
	if active != "" {
		return active
	}
	if len(staged) > 0 {
		return staged[len(staged)-1]
	}
	return ""
}

// Prunable returns the staged releases to delete so that the keep most
// recently deployed ones stay, newest first. It never returns a protected
// release (the active, draining and previous ones), nor one that was
// never deployed (staged for a later reload).
func (r Record) Prunable(staged, protect []string, keep int) []string {
	var seen []string
	for _, v := range staged {
		if _, ok := r.Deployed[v]; ok {
			seen = append(seen, v)
		}
	}
	slices.SortFunc(seen, func(a, b string) int { return r.Deployed[b].Compare(r.Deployed[a]) })
	var out []string
	for i, v := range seen {
		if i >= keep && !slices.Contains(protect, v) {
			out = append(out, v)
		}
	}
	return out
}

// Peers returns, for the instance unit, the unit replacing it (incoming)
// and the one it replaced (outgoing), as the swap in st stands: during a
// swap, the new instance and the active one name each other; once it is
// over, the new active one still names the one it replaced until the next
// swap. Empty when there is none.
func (st Status) Peers(unit string) (incoming, outgoing string) {
	active := st.Active != nil && st.Active.Unit == unit
	switch {
	case st.Draining != nil && st.Draining.Unit == unit && st.Active != nil:
		incoming = st.Active.Unit
	case st.Incoming != nil && active:
		incoming = st.Incoming.Unit
	}
	switch {
	case st.Draining != nil && active:
		outgoing = st.Draining.Unit
	case st.Incoming != nil && st.Incoming.Unit == unit && st.Active != nil:
		outgoing = st.Active.Unit
	case active && st.Last != nil && st.Last.OK && st.Last.To != nil && st.Last.To.Unit == unit && st.Last.From != nil:
		outgoing = st.Last.From.Unit
	}
	return incoming, outgoing
}
