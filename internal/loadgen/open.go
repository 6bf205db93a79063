package loadgen

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"time"
)

// OpenOptions describe an open-model load: requests start at a constant
// rate whether or not earlier ones finished, so a stall shows up as
// latency instead of hiding as a lower request rate (as it does in a
// closed loop).
type OpenOptions struct {
	URL         string
	Method      string // GET when empty
	Body        []byte
	KeepAlive   bool
	Rate        float64 // requests per second
	Duration    time.Duration
	MaxInFlight int           // requests beyond this are counted as "overload" failures; 10000 when zero
	Timeout     time.Duration // per request; 10 s when zero
	// IdleTimeout makes the client close a keep-alive connection that was
	// idle this long (http.Transport.IdleConnTimeout); zero: never.
	IdleTimeout time.Duration
}

func (o OpenOptions) withDefaults() OpenOptions {
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 10000
	}
	return o
}

// Sample is one request of an open-model run or of an idle pool.
type Sample struct {
	Start   time.Time
	Latency time.Duration
	Class   string // "" when it succeeded, else as Classify
	Release string // X-Release of the response
	// IdleConn is how long the connection the request went out on had
	// been idle before (RunIdlePool only; zero for a new connection).
	IdleConn time.Duration
}

// samples collects Samples from many goroutines.
type samples struct {
	mu   sync.Mutex // guards list
	list []Sample
}

func (s *samples) add(x Sample) {
	s.mu.Lock()
	s.list = append(s.list, x)
	s.mu.Unlock()
}

// sorted returns the samples in start order.
func (s *samples) sorted() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.SortStableFunc(s.list, func(a, b Sample) int { return a.Start.Compare(b.Start) })
	return s.list
}

// RunOpen sends requests at o.Rate for o.Duration (or until ctx ends) and
// returns one Sample per request, in start order. Requests in flight when
// ctx ends are waited for.
func RunOpen(ctx context.Context, o OpenOptions) []Sample {
	o = o.withDefaults()
	tr := &http.Transport{DisableKeepAlives: !o.KeepAlive, MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024, IdleConnTimeout: o.IdleTimeout,
		// A request that times out leaves its dial going (net/http): without
		// this bound a stalled server collects dials until the load generator
		// runs out of file descriptors.
		MaxConnsPerHost: o.MaxInFlight}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.Timeout}
	n := int(o.Rate * o.Duration.Seconds())
	var out samples
	sem := make(chan struct{}, o.MaxInFlight)
	var wg sync.WaitGroup
	begin := time.Now()
	interval := time.Duration(float64(time.Second) / o.Rate)
	for i := range n {
		at := begin.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				wg.Wait()
				return out.sorted()
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			out.add(Sample{Start: at, Class: "overload"})
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			out.add(openOne(context.Background(), client, o, at))
		})
	}
	wg.Wait()
	return out.sorted()
}

func openOne(ctx context.Context, c *http.Client, o OpenOptions, at time.Time) Sample {
	s := Sample{Start: at}
	req, err := http.NewRequestWithContext(ctx, o.Method, o.URL, bytes.NewReader(o.Body))
	if err != nil {
		s.Class = "other"
		return s
	}
	resp, err := c.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode/100 != 2 {
			err = &statusError{resp.StatusCode}
		}
		s.Release = resp.Header.Get("X-Release")
	}
	// Latency counts from the scheduled start: a late start is latency too.
	s.Latency = time.Since(at)
	if err != nil {
		s.Class = Classify(err)
	}
	return s
}

// IdlePoolOptions describe a pool of keep-alive clients that each keep one
// connection and leave it idle between requests: the clients that meet a
// server closing an idle connection.
type IdlePoolOptions struct {
	URL     string
	Method  string // GET when empty
	Body    []byte
	Conns   int           // clients, one connection each; 16 when zero
	MinIdle time.Duration // each client waits a random time in [MinIdle, MaxIdle) between requests
	MaxIdle time.Duration
	Timeout time.Duration // per request; 10 s when zero
}

// RunIdlePool runs the pool until ctx ends and returns one Sample per
// request, in start order, each with how long its connection sat idle.
// Requests in flight when ctx ends are waited for.
func RunIdlePool(ctx context.Context, o IdlePoolOptions) []Sample {
	if o.Conns <= 0 {
		o.Conns = 16
	}
	oo := OpenOptions{URL: o.URL, Method: o.Method, Body: o.Body, Timeout: o.Timeout}.withDefaults()
	pause := func() time.Duration { return o.MinIdle + rand.N(max(o.MaxIdle-o.MinIdle, 1)) }
	var out samples
	var wg sync.WaitGroup
	for range o.Conns {
		wg.Go(func() {
			tr := &http.Transport{MaxIdleConnsPerHost: 1} // no idle timeout: the pool decides
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: oo.Timeout}
			wait := rand.N(max(o.MaxIdle, 1)) // spread the clients out
			for {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
				var idle time.Duration
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { idle = i.IdleTime }}
				s := openOne(httptrace.WithClientTrace(context.Background(), trace), client, oo, time.Now())
				s.IdleConn = idle
				out.add(s)
				wait = pause()
			}
		})
	}
	wg.Wait()
	return out.sorted()
}
