package parent

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// followKeep is how many swaps the parent keeps the progress of for
// followers (beamdeploy wait): the running one and the last ended ones.
// Older swaps are answered from the history in the state file.
const followKeep = swap.HistoryLen

// followed is the progress of one swap and, once it ended, its final
// message, for any number of followers.
type followed struct {
	mu      sync.Mutex // guards seq, events, final, changed
	seq     int
	events  []followedEvent
	final   any           // control.Result or *control.Error, once the swap ended
	changed chan struct{} // closed and replaced at every change
}

type followedEvent struct {
	seq       int
	transient bool // staging progress: replaced by the next one
	swap.Event
}

func newFollowed() *followed { return &followed{changed: make(chan struct{})} }

// add records e. A transient event (staging progress) replaces the last
// event if that one was transient too, so that a long upload does not
// pile up events.
func (f *followed) add(e swap.Event, transient bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	fe := followedEvent{seq: f.seq, transient: transient, Event: e}
	if n := len(f.events); transient && n > 0 && f.events[n-1].transient {
		f.events[n-1] = fe
	} else {
		f.events = append(f.events, fe)
	}
	f.notifyLocked()
}

// end records the swap's final message.
func (f *followed) end(final any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.final = final
	f.notifyLocked()
}

func (f *followed) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// follow sends f's events from the first one, then its final message, to
// out. It returns after the final message, or when ctx ends.
func (f *followed) follow(ctx context.Context, out *stream) {
	sent, seq := 0, 0 // events sent, and the seq of the last one sent
	for {
		f.mu.Lock()
		if sent > 0 && f.events[sent-1].seq != seq {
			sent-- // the last one sent was replaced by newer staging progress
		}
		todo := make([]swap.Event, 0, len(f.events)-sent)
		for _, e := range f.events[sent:] {
			todo = append(todo, e.Event)
			seq = e.seq
		}
		sent = len(f.events)
		final, changed := f.final, f.changed
		f.mu.Unlock()
		for _, e := range todo {
			out.progress(e)
		}
		if final != nil {
			out.send(final)
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// followers keeps the progress of the running swap and of the last
// followKeep ones. The zero value is ready to use.
type followers struct {
	mu    sync.Mutex // guards swaps, order
	swaps map[string]*followed
	order []string // ids, oldest first
}

// get returns the record of swap id; when there is none it creates one if
// create is set, and returns nil otherwise.
func (t *followers) get(id string, create bool) *followed {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.swaps[id]; ok || !create {
		return f
	}
	if t.swaps == nil {
		t.swaps = map[string]*followed{}
	}
	f := newFollowed()
	t.swaps[id] = f
	t.order = append(t.order, id)
	if len(t.order) > followKeep {
		delete(t.swaps, t.order[0])
		t.order = t.order[1:]
	}
	return f
}

// waitHandler streams a swap's progress and final message like the
// request that started it: the swap named by ?swap=ID, or the running
// one, or else the last one. A swap that ended is answered at once.
func (s *server) waitHandler(w http.ResponseWriter, r *http.Request) {
	f, err := s.followed(r.URL.Query().Get("swap"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, errorBody(control.CodeNotFound, err.Error()))
		return
	}
	f.follow(r.Context(), newStream(w))
}

// followed returns the record of swap id ("": the running swap, or else
// the last one). A swap that ended before this parent started is answered
// from the history: every swap that failed was rolled back, so its error
// has the code rolled_back (the parent that ran it may have given a more
// precise one, such as release_not_found).
func (s *server) followed(id string) (*followed, error) {
	st := s.machine.Status()
	if id == "" {
		id = st.Swap
	}
	if id == "" && st.Last != nil {
		id = st.Last.ID
	}
	if id == "" {
		return nil, fmt.Errorf("%s has not run a swap yet", s.app)
	}
	if f := s.follow.get(id, st.Upgrading && id == st.Swap); f != nil {
		return f, nil
	}
	for _, res := range s.machine.Record().History { // the last swap included
		if res.ID == id {
			f := newFollowed()
			f.end(finalOf(res))
			return f, nil
		}
	}
	return nil, fmt.Errorf("no swap %s: %s has no record of it (see: beamdeploy status %s)", id, s.app, s.app)
}

// finalOf is the final message of a recorded swap.
func finalOf(res swap.Result) any {
	if res.OK {
		return control.Result{MessageType: control.TypeResult, Result: res}
	}
	e := errorBody(control.CodeRolledBack, res.Error)
	e.Result = &res
	return e
}
