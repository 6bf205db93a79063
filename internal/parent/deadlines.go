package parent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// Bounds of a control connection once the gate admitted it.
const (
	// headerTimeout bounds reading a request's header, counted from the
	// admission of the connection or the end of the previous request.
	headerTimeout = 5 * time.Second
	// idleTimeout closes a keep-alive connection idle this long (the
	// client drops its own sooner: control.IdleConnTimeout).
	idleTimeout = 30 * time.Second
	// maxHeaderBytes bounds a request's header.
	maxHeaderBytes = 64 << 10
	// requestTimeout bounds reading and answering an ordinary request
	// (status, releases, handoff, peers). Swaps, uploads and long polls
	// replace it with their own bounds below.
	requestTimeout = 30 * time.Second
	// uploadTimeout bounds reading a whole release tarball (upgrade,
	// hot-upgrade, stage), which holds the swap lock: 2 GiB, the most a
	// release may unpack to, take seconds on a local socket.
	uploadTimeout = 10 * time.Minute
	// uploadStall fails an upload that sends nothing for this long.
	uploadStall = 30 * time.Second
	// streamWriteTimeout bounds writing one message of a progress stream
	// (which blocks only once the socket's buffer is full): a client that
	// stops reading is then taken for gone, and like a client that went
	// away it cancels a swap that has not reached its cutover.
	streamWriteTimeout = 10 * time.Second
	// hotPollTimeout ends an instance's hot-upgrade poll that got no
	// order (204 No Content); the SDK polls again at once.
	hotPollTimeout = 10 * time.Minute
)

// controlServer serves h on the control socket's admitted connections.
func controlServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ConnContext: connContext,
		ReadHeaderTimeout: headerTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
}

// withDeadlines gives every request d (requestTimeout) to be read and
// answered. Handlers that take longer set their own deadlines through
// longPoll, newStream and uploadBody.
func withDeadlines(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setDeadlines(w, time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// longPoll replaces the request's deadlines for a handler that waits for
// an event: d from now, or none when d is 0 (the cutover wait and the hot
// report end with the swap, which its own timeouts bound).
func longPoll(w http.ResponseWriter, d time.Duration) {
	var end time.Time
	if d > 0 {
		end = time.Now().Add(d)
	}
	setDeadlines(w, end)
}

func setDeadlines(w http.ResponseWriter, end time.Time) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(end)  // only test recorders cannot; they need no deadline
	_ = rc.SetWriteDeadline(end) // as above
}

// uploadBody reads an upload's body within its bounds: every read must
// bring data within stall (uploadStall), and the body must end within
// limit (uploadTimeout) of the first read. At its end the read deadline
// is lifted: the connection then only tells whether the client went away
// (which cancels the swap).
type uploadBody struct {
	r     io.Reader
	rc    *http.ResponseController
	stall time.Duration
	limit time.Duration
	end   time.Time // set at the first read
}

func newUploadBody(w http.ResponseWriter, r *http.Request) *uploadBody {
	return &uploadBody{r: r.Body, rc: http.NewResponseController(w), stall: uploadStall, limit: uploadTimeout}
}

func (u *uploadBody) Read(p []byte) (int, error) {
	now := time.Now()
	if u.end.IsZero() {
		u.end = now.Add(u.limit)
	}
	deadline := now.Add(u.stall)
	if u.end.Before(deadline) {
		deadline = u.end
	}
	_ = u.rc.SetReadDeadline(deadline) // as in setDeadlines
	n, err := u.r.Read(p)
	switch {
	case err == io.EOF:
		_ = u.rc.SetReadDeadline(time.Time{}) // as in setDeadlines
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("upload too slow: no data for %s, or not complete within %s: %w", u.stall, u.limit, err)
	}
	return n, err
}
