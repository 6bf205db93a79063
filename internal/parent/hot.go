package parent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// errHotUnsupported marks a hot upgrade refused before the running
// process was touched.
var errHotUnsupported = control.ErrHotUnsupported

// registerWait is how long a hot upgrade waits for the instance's poll:
// the SDK polls again right after an order or a parent restart.
const registerWait = 3 * time.Second

// hotJob is one hot upgrade order on its way to an instance.
type hotJob struct {
	unit    string
	order   control.HotOrder
	report  chan control.HotReport  // from the instance
	verdict chan control.HotVerdict // to the instance
	// reported is set by the first report: the only one taken, and the
	// only one the verdict answers.
	reported atomic.Bool
}

// hotBoard pairs instances waiting for an order (their SDK long-polls
// PathHotWait) with the hot upgrade that needs one.
type hotBoard struct {
	mu      sync.Mutex
	waiting map[string]chan *hotJob // unit → its waiting poll
	running map[string]*hotJob      // order id → job
}

func (b *hotBoard) register(unit string) chan *hotJob {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.waiting == nil {
		b.waiting, b.running = map[string]chan *hotJob{}, map[string]*hotJob{}
	}
	ch := make(chan *hotJob)
	b.waiting[unit] = ch
	return ch
}

func (b *hotBoard) unregister(unit string, ch chan *hotJob) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.waiting[unit] == ch {
		delete(b.waiting, unit)
	}
}

// dispatch hands job to the process of unit waiting for one; false if
// none waits.
func (b *hotBoard) dispatch(ctx context.Context, unit string, job *hotJob) bool {
	var ch chan *hotJob
	// Between two polls, or just started: the poll comes within registerWait.
	_ = pollUntil(ctx, registerWait, func(context.Context) bool { // on timeout ch stays nil
		b.mu.Lock()
		defer b.mu.Unlock()
		if ch = b.waiting[unit]; ch != nil {
			delete(b.waiting, unit)
			b.running[job.order.ID] = job
		}
		return ch != nil
	})
	if ch == nil {
		return false
	}
	select {
	case ch <- job:
		return true
	case <-time.After(time.Second): // the poll went away meanwhile
		b.done(job.order.ID)
		return false
	}
}

func (b *hotBoard) job(id string) *hotJob {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running[id]
}

func (b *hotBoard) done(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, id)
}

// hotWait is the long poll of an instance that can hand over.
func (s *server) hotWait(w http.ResponseWriter, r *http.Request) {
	unit := r.URL.Query().Get("unit")
	if _, a := peerFrom(r.Context()); a.instance {
		unit = a.unit // an instance waits for itself only
	}
	if _, err := colorOf(s.app, unit); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(control.CodeBadRequest, err.Error()))
		return
	}
	longPoll(w, hotPollTimeout+requestTimeout)
	ch := s.hot.register(unit)
	defer s.hot.unregister(unit, ch)
	poll := time.NewTimer(hotPollTimeout)
	defer poll.Stop()
	select {
	case job := <-ch:
		writeJSON(w, http.StatusOK, job.order)
	case <-poll.C:
		w.WriteHeader(http.StatusNoContent) // no order: poll again
	case <-r.Context().Done():
	}
}

// hotReport receives an instance's report and answers with the verdict.
func (s *server) hotReport(w http.ResponseWriter, r *http.Request) {
	var rep control.HotReport
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&rep); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(control.CodeBadRequest, "body must be a hot report: "+err.Error()))
		return
	}
	job := s.hot.job(rep.ID)
	if job == nil {
		writeJSON(w, http.StatusOK, control.HotVerdict{Error: "no hot upgrade " + rep.ID + " is running"})
		return
	}
	if _, a := peerFrom(r.Context()); a.instance && a.unit != job.unit {
		writeJSON(w, http.StatusForbidden, errorBody(control.CodePermissionDenied, "permission denied: "+a.unit+" may not report on the hot upgrade of "+job.unit))
		return
	}
	longPoll(w, 0) // the verdict comes within the hot upgrade's own bounds
	if !job.reported.CompareAndSwap(false, true) {
		writeJSON(w, http.StatusConflict, errorBody(control.CodeBadRequest, "hot upgrade "+rep.ID+" was reported on already"))
		return
	}
	job.report <- rep // buffered, and this is its one sender
	select {
	case v := <-job.verdict:
		writeJSON(w, http.StatusOK, v)
	case <-r.Context().Done():
	}
}

// hotUpgrade stages an uploaded release and hot-upgrades the active
// instance to it.
func (s *server) hotUpgrade(w http.ResponseWriter, r *http.Request) {
	out := uploadStream(w, r)
	if out == nil {
		return
	}
	who, ok := s.admit(r, out, cmdHotUpgrade)
	if !ok {
		return
	}
	unpin := func() {}
	s.runOp(r, out, s.machine.HotUpgrade, swap.Request{Audit: who, Prepare: func(ctx context.Context) (string, error) {
		active := s.machine.Status().Active
		if active == nil {
			return "", fmt.Errorf("%w: %s has no active instance; start one with: beamdeploy upgrade %s TARBALL", errHotUnsupported, s.app, s.app)
		}
		rel, err := s.stageForSwap(ctx, r, out, &unpin)
		if err != nil {
			return "", err
		}
		cur, err := s.releases.Get(active.Release)
		if err != nil {
			return "", fmt.Errorf("%w: read the running release %s: %w", errHotUnsupported, active.Release, err)
		}
		if err := hotCompatible(s.app, cur, rel); err != nil {
			return "", err
		}
		return rel.Version, nil
	}}, func() { unpin() })
}

// pollUntil checks done every 20 ms until it is true, and fails with the
// context's error once within has passed or ctx ends.
func pollUntil(ctx context.Context, within time.Duration, done func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for !done(ctx) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
