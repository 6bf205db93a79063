// Package loadgen sends bounded HTTP load to a loopback address and
// classifies every failure. The demo and the end-to-end tests use it to
// count lost requests across swaps.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options describe the load. Every run is bounded by Duration and
// MaxRequests, whichever comes first, and by ctx.
type Options struct {
	URL         string
	Method      string // GET when empty
	Body        []byte // sent with every request (POST)
	KeepAlive   bool   // reuse connections; otherwise one connection per request
	Workers     int    // concurrent closed-loop clients; 4 when zero
	Duration    time.Duration
	MaxRequests int64
	Timeout     time.Duration // per request; 10 s when zero
	Pause       time.Duration // between a worker's requests
}

// Stats summarise a run. Failed counts by class: refused, reset, eof,
// timeout, status (non-2xx), other.
type Stats struct {
	Sent     int64
	OK       int64
	Failed   int64
	ByClass  map[string]int64
	Releases map[string]int64 // X-Release of successful responses
	Errors   []string         // the first few failures
}

// Run sends load until Duration, MaxRequests or ctx ends.
func Run(ctx context.Context, o Options) Stats {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: !o.KeepAlive, MaxIdleConnsPerHost: o.Workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.Timeout}
	st := Stats{ByClass: map[string]int64{}, Releases: map[string]int64{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				if o.MaxRequests > 0 && st.Sent >= o.MaxRequests {
					mu.Unlock()
					return
				}
				st.Sent++
				mu.Unlock()
				rel, err := one(ctx, client, o)
				mu.Lock()
				st.record(rel, err)
				mu.Unlock()
				if o.Pause > 0 {
					time.Sleep(o.Pause)
				}
			}
		})
	}
	wg.Wait()
	return st
}

func one(ctx context.Context, c *http.Client, o Options) (string, error) {
	// Requests in flight when the run ends are not cut: only new ones stop.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), o.Method, o.URL, bytes.NewReader(o.Body))
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return "", &statusError{resp.StatusCode}
	}
	return resp.Header.Get("X-Release"), nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("HTTP status %d", e.code) }

func (s *Stats) record(rel string, err error) {
	if err == nil {
		s.OK++
		s.Releases[rel]++
		return
	}
	s.Failed++
	s.ByClass[Classify(err)]++
	if len(s.Errors) < 10 {
		s.Errors = append(s.Errors, err.Error())
	}
}

// Classify names the kind of a request failure.
func Classify(err error) string {
	var se *statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "status"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// String summarises s in one line.
func (s Stats) String() string {
	var classes []string
	for k, v := range s.ByClass {
		classes = append(classes, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(classes)
	out := fmt.Sprintf("requests: %d, failed: %d", s.Sent, s.Failed)
	if len(classes) > 0 {
		out += " (" + strings.Join(classes, " ") + ")"
	}
	return out
}
