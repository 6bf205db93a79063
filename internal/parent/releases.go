package parent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// Release states in listings.
const (
	StateActive    = "active"
	StateDraining  = "draining"
	StatePrevious  = "previous" // the rollback target
	StateAvailable = "available"
)

// relCommand is the app's command relative to the release root, for
// release.CheckCommand; "" when it is an absolute path outside releases.
func relCommand(exec []string) string {
	if len(exec) == 0 || filepath.IsAbs(exec[0]) {
		return ""
	}
	return exec[0]
}

// storeReleases is the release store as the swap machine uses it
// (swap.Releases): Pin and Remove are the store's own.
type storeReleases struct{ *release.Store }

// Staged implements swap.Releases.
func (s storeReleases) Staged() ([]string, error) {
	rels, err := s.List()
	if err != nil {
		return nil, err
	}
	versions := make([]string, len(rels))
	for i, r := range rels {
		versions[i] = r.Version
	}
	return versions, nil
}

// Checksum implements swap.Releases: the sha256 the store recorded for a
// release (the tarball's, as `beamdeploy releases` shows it).
func (s storeReleases) Checksum(version string) string {
	r, err := s.Get(version)
	if err != nil {
		return ""
	}
	return r.SHA256
}

// prune applies the retention policy after a swap (swap.Machine.Prune)
// and logs what it did.
func (s *server) prune() {
	pruned, err := s.machine.Prune()
	if err != nil {
		s.log.Warn("retention: could not list releases", "err", err)
		return
	}
	for _, p := range pruned {
		switch {
		case errors.Is(p.Err, release.ErrInUse):
			s.log.Info("retention: kept an old release that is in use", "release", p.Release, "err", p.Err)
		case errors.Is(p.Err, release.ErrNotFound): // removed meanwhile
		case p.Err != nil:
			s.log.Warn("retention: could not remove release", "release", p.Release, "err", p.Err)
		default:
			s.log.Info("retention: removed old release", "release", p.Release)
		}
	}
}

func (s *server) releasesHandler(w http.ResponseWriter, _ *http.Request) {
	rels, err := s.releases.List()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody(control.CodeInternal, err.Error()))
		return
	}
	st, deployed, prev := s.machine.Status(), s.machine.Record().Deployed, s.machine.RollbackTarget()
	active := ""
	if st.Active != nil {
		active = st.Active.Release
	}
	out := control.Releases{MessageType: control.TypeReleases, Releases: []control.ReleaseInfo{}}
	for _, r := range rels {
		info := control.ReleaseInfo{Version: r.Version, Size: r.Size, Files: r.Files, SHA256: r.SHA256, StagedAt: r.StagedAt, State: StateAvailable, Compat: r.Compat}
		if r.Compat != "" {
			info.Hot = r.HotMode()
		}
		if t, ok := deployed[r.Version]; ok {
			info.DeployedAt = t
		}
		switch {
		case r.Version == active:
			info.State = StateActive
		case st.Draining != nil && r.Version == st.Draining.Release:
			info.State = StateDraining
		case r.Version == prev:
			info.State = StatePrevious
		}
		out.Releases = append(out.Releases, info)
	}
	writeJSON(w, http.StatusOK, out)
}

// stageHandler stages an uploaded release without swapping to it.
func (s *server) stageHandler(w http.ResponseWriter, r *http.Request) {
	out := uploadStream(w, r)
	if out == nil {
		return
	}
	rel, err := s.stage(r.Context(), r, out)
	if err != nil {
		out.fail(failure(err))
		return
	}
	out.send(control.Staged{MessageType: control.TypeStaged, Version: rel.Version, Size: rel.Size, Files: rel.Files, SHA256: rel.SHA256, Reused: rel.Reused})
}

// stage reads the tarball in r's body, reporting progress to out. A
// forced stage of a release in use (pinned: serving, draining or the
// target of a running swap) fails with release.ErrInUse.
func (s *server) stage(ctx context.Context, r *http.Request, out *stream) (release.Release, error) {
	q := r.URL.Query()
	filename := q.Get("filename")
	began := time.Now()
	opts := release.StageOptions{SHA256: q.Get("sha256"), Force: q.Get("force") == "1", Version: q.Get("version"), Size: r.ContentLength,
		Command:  relCommand(s.exec),
		Progress: func(n int64) { out.staging(stagingEvent(n, r.ContentLength, time.Since(began))) }}
	rel, err := s.releases.Stage(ctx, filename, newUploadBody(out.w, r), opts)
	if err != nil {
		return rel, err
	}
	out.progress(stagedEvent(rel, time.Since(began)))
	return rel, nil
}

// stageForSwap is stage for an upload that a swap then runs: the release
// is pinned with the content just staged until the request ends (the
// caller calls *unpin), so that a forced stage of the same version that
// lands before the swap pins its target itself makes the swap fail rather
// than start other files than were uploaded.
func (s *server) stageForSwap(ctx context.Context, r *http.Request, out *stream, unpin *func()) (release.Release, error) {
	rel, err := s.stage(ctx, r, out)
	if err != nil {
		return rel, err
	}
	u, err := s.releases.PinStaged(rel, swap.PinHolder(swap.IDFromContext(ctx)))
	if err != nil {
		return release.Release{}, fmt.Errorf("release %s changed while it was staged for this swap: %w", rel.Version, err)
	}
	*unpin = u
	return rel, nil
}

// rollbackHandler swaps to the previous release, or to the one named.
func (s *server) rollbackHandler(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	out := newStream(w)
	who, ok := s.admit(r, out, cmdRollback)
	if !ok {
		return
	}
	s.run(r, out, swap.Request{Audit: who, Prepare: func(context.Context) (string, error) {
		if to == "" {
			if to = s.machine.RollbackTarget(); to == "" {
				return "", fmt.Errorf("%w: no previous release to roll back to (see: beamdeploy releases %s)", release.ErrNotFound, s.app)
			}
		}
		if _, err := s.releases.Get(to); err != nil {
			return "", err
		}
		return to, nil
	}})
}
