package loadgen

import (
	"bytes"
	"context"
	"io"
	"net/http"
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
}

// Sample is one request of an open-model run.
type Sample struct {
	Start   time.Time
	Latency time.Duration
	Class   string // "" when it succeeded, else as Classify
	Release string // X-Release of the response
}

// RunOpen sends requests at o.Rate for o.Duration (or until ctx ends) and
// returns one Sample per request, in start order.
func RunOpen(ctx context.Context, o OpenOptions) []Sample {
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 10000
	}
	tr := &http.Transport{DisableKeepAlives: !o.KeepAlive, MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.Timeout}
	n := int(o.Rate * o.Duration.Seconds())
	samples := make([]Sample, n)
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
				return samples[:i]
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			samples[i] = Sample{Start: at, Class: "overload"}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			samples[i] = openOne(client, o, at)
		})
	}
	wg.Wait()
	return samples
}

func openOne(c *http.Client, o OpenOptions, at time.Time) Sample {
	s := Sample{Start: at}
	req, err := http.NewRequest(o.Method, o.URL, bytes.NewReader(o.Body))
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
