package parent

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// maxHandoffBody bounds a PUT body; the store enforces its own smaller
// limits with clearer errors.
const maxHandoffBody = 1 << 20

func (s *server) handoffRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+control.PathHandoff, s.guard(true, s.handoffList))
	mux.HandleFunc("GET "+control.PathHandoff+"/{key}", s.guard(true, s.handoffGet))
	mux.HandleFunc("PUT "+control.PathHandoff+"/{key}", s.guard(true, s.handoffPut))
	mux.HandleFunc("DELETE "+control.PathHandoff+"/{key}", s.guard(true, s.handoffDelete))
	mux.HandleFunc("GET "+control.PathPeers, s.guard(true, s.peersHandler))
	mux.HandleFunc("GET "+control.PathCutover, s.guard(true, s.cutoverHandler))
}

func (s *server) handoffList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, control.Handoff{MessageType: control.TypeHandoff, Entries: s.handoff.List()})
}

func (s *server) handoffGet(w http.ResponseWriter, r *http.Request) {
	v, err := s.handoff.Get(r.PathValue("key"))
	if err != nil {
		handoffError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(v) // a client that went away is not our problem
}

func (s *server) handoffPut(w http.ResponseWriter, r *http.Request) {
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHandoffBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody(control.CodeLimit, "handoff value: "+err.Error()))
		return
	}
	if err := s.handoff.Put(r.PathValue("key"), v); err != nil {
		handoffError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) handoffDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.handoff.Delete(r.PathValue("key")); err != nil {
		handoffError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func handoffError(w http.ResponseWriter, err error) {
	status, e := failure(err)
	writeJSON(w, status, e)
}

// peers tells unit which instance replaces it and which one it replaced.
func (s *server) peers(unit string) control.Peers {
	st := s.machine.Status()
	p := control.Peers{MessageType: control.TypePeers, Unit: unit}
	active := st.Active != nil && st.Active.Unit == unit
	switch {
	case st.Draining != nil && st.Draining.Unit == unit && st.Active != nil:
		p.Incoming = st.Active.Unit
	case st.Incoming != nil && active:
		p.Incoming = st.Incoming.Unit
	}
	switch {
	case st.Draining != nil && active:
		p.Outgoing = st.Draining.Unit
	case st.Incoming != nil && st.Incoming.Unit == unit && st.Active != nil:
		p.Outgoing = st.Active.Unit
	case active && st.Last != nil && st.Last.OK && st.Last.To != nil && st.Last.To.Unit == unit && st.Last.From != nil:
		p.Outgoing = st.Last.From.Unit
	}
	return p
}

func (s *server) peersHandler(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.peers(r.URL.Query().Get("unit")))
}

// cutoverHandler answers once no swap is running: a new instance asking
// right after READY=1 learns that the instance it replaced has stopped.
func (s *server) cutoverHandler(w http.ResponseWriter, r *http.Request) {
	longPoll(w, 0)
	tick := time.NewTicker(time.Second) // also catches swaps that do not signal ended
	defer tick.Stop()
	for {
		ended := s.swapEnded.wait()
		if !s.machine.Status().Upgrading {
			writeJSON(w, http.StatusOK, s.peers(r.URL.Query().Get("unit")))
			return
		}
		select {
		case <-ended:
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}

// broadcast wakes every waiter at once.
type broadcast struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
