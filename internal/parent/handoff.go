package parent

import (
	"io"
	"net/http"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
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
func peers(st swap.Status, unit string) control.Peers {
	p := control.Peers{MessageType: control.TypePeers, Unit: unit}
	p.Incoming, p.Outgoing = st.Peers(unit)
	return p
}

func (s *server) peersHandler(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, peers(s.machine.Status(), r.URL.Query().Get("unit")))
}

// cutoverHandler answers once no swap is running: a new instance asking
// right after READY=1 learns that the instance it replaced has stopped.
func (s *server) cutoverHandler(w http.ResponseWriter, r *http.Request) {
	longPoll(w, 0)
	st, err := s.machine.WaitIdle(r.Context())
	if err != nil {
		return // the client went away
	}
	writeJSON(w, http.StatusOK, peers(st, r.URL.Query().Get("unit")))
}
