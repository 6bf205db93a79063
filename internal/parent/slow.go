package parent

import (
	"net/http"
	"sync/atomic"
	"time"
)

// slowRequest is how long a quick request (status, releases) may take,
// from the gate's accept of its connection to the end of its handler,
// before the parent logs where the time went. The promise is an answer
// within a second, also during a swap and a flood of connections.
const slowRequest = time.Second

type connTimesKey struct{}

// connTimes is when the gate accepted a connection and admitted it.
type connTimes struct {
	accepted, admitted time.Time
	used               atomic.Bool // a request on the connection was timed
}

// timed logs a request that took slowRequest or longer, with its stages:
// the gate (accept to verdict), reading the request (verdict to the
// handler) and the handler. Only the first request on a connection counts
// from the accept; a later one, from its handler.
func (s *server) timed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		h(w, r)
		ended := time.Now()
		accepted, admitted := began, began
		if ct, ok := r.Context().Value(connTimesKey{}).(*connTimes); ok && !ct.accepted.IsZero() && !ct.used.Swap(true) {
			accepted, admitted = ct.accepted, ct.admitted
		}
		if total := ended.Sub(accepted); total >= slowRequest {
			p, _ := peerFrom(r.Context())
			s.log.Warn("slow control request", "path", r.URL.Path, "peer", p.String(), "total", total,
				"gate", admitted.Sub(accepted), "request", began.Sub(admitted), "handler", ended.Sub(began))
		}
	}
}
