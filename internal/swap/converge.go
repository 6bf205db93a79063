package swap

import (
	"fmt"
	"slices"
)

// Plan is what a restarted parent does with the instances it finds.
type Plan struct {
	// Keep is the running instance to adopt as active, nil if none.
	Keep *Instance
	// Stop are the other running instances, to stop after Keep is adopted.
	Stop []Instance
	// Start is the release to start when nothing runs: the last active
	// one. Empty when Keep is set or nothing was ever active.
	Start string
	// Interrupted is the swap that was in flight when the parent stopped,
	// as it ends now; nil if none was.
	Interrupted *Result
}

// Converge decides, from the state a parent saved and the instance units
// systemd reports running, which instance serves. It is deterministic and
// decides before anything is stopped:
//
//   - An instance is recognised by unit name and invocation id, or by unit
//     name and release when systemd restarted it (new invocation, same
//     release); never by PID.
//   - Before its cutover an interrupted swap aborts: the old instance is
//     kept and the new one stopped. After it, the swap finishes: the new
//     instance is kept and the old one stopped. Should the preferred one
//     be gone, the other one serves rather than nothing.
//   - A running instance that matches no record is kept only when no
//     recorded one runs (the newest such, by start time); it is otherwise
//     stopped.
//   - With nothing running, the last active release is started.
func Converge(st State, running []Instance) Plan {
	var want []*Instance // in order of preference
	if st.Active != nil {
		want = append(want, st.Active)
	}
	if in := st.Swap; in != nil {
		other := in.To
		if in.Committed() {
			other = in.From
		}
		if other != nil {
			want = append(want, other)
		}
	}
	var p Plan
	for _, w := range want {
		if i := slices.IndexFunc(running, func(u Instance) bool { return sameInstance(*w, u) }); i >= 0 {
			p.Keep = adopt(running[i], *w)
			break
		}
	}
	if p.Keep == nil {
		for i := range running {
			if p.Keep == nil || running[i].Since.After(p.Keep.Since) {
				p.Keep = &running[i]
			}
		}
		if p.Keep != nil {
			c := *p.Keep
			p.Keep = &c
		}
	}
	for _, u := range running {
		if p.Keep == nil || u.Unit != p.Keep.Unit {
			p.Stop = append(p.Stop, u)
		}
	}
	if p.Keep == nil && st.Active != nil {
		p.Start = st.Active.Release
	}
	if in := st.Swap; in != nil {
		p.Interrupted = interrupted(*in, p.Keep)
	}
	return p
}

// sameInstance reports whether running unit u is the recorded instance
// rec, possibly restarted by systemd.
func sameInstance(rec, u Instance) bool {
	if rec.Unit == "" || rec.Unit != u.Unit {
		return false
	}
	if rec.InvocationID != "" && rec.InvocationID == u.InvocationID {
		return true
	}
	return rec.Release != "" && rec.Release == u.Release
}

// adopt returns the running instance u as recorded, filling what systemd
// does not report.
func adopt(u, rec Instance) *Instance {
	if u.Release == "" {
		u.Release = rec.Release
	}
	if u.Color == "" {
		u.Color = rec.Color
	}
	return &u
}

func interrupted(in Intent, keep *Instance) *Result {
	res := &Result{ID: in.ID, Kind: in.Kind, From: clone(in.From), To: clone(in.To), Release: in.Release, Started: in.Began,
		SHA256: in.SHA256, Audit: in.Audit}
	finished := keep != nil && in.To != nil && keep.Unit == in.To.Unit
	if in.To == nil && keep != nil && in.Color != "" { // the parent died while Start ran
		finished = keep.Color == in.Color && keep.Release == in.Release
	}
	if in.Kind == KindHot { // same unit either way: the release it runs tells
		finished = keep != nil && keep.Release == in.Release
	}
	switch {
	case finished:
		res.OK = true
		res.Warning = fmt.Sprintf("the parent restarted during %s; the swap was finished on restart", in.Phase)
	case in.Committed():
		res.Error = fmt.Sprintf("the parent restarted during %s and the new instance was gone; %s serves", in.Phase, activeName(keep))
	default:
		res.Error = fmt.Sprintf("the parent restarted during %s; the swap was aborted and %s serves", in.Phase, activeName(keep))
	}
	return res
}
