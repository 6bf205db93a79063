package loadgen_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunCountsAndClassifies(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if n%10 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-Release", "1.0.0")
	}))
	defer srv.Close()
	st := loadgen.Run(t.Context(), loadgen.Options{URL: srv.URL, Workers: 1, KeepAlive: true, Duration: 5 * time.Second, MaxRequests: 50})
	assert.EqualValues(t, 50, st.Sent)
	assert.EqualValues(t, 45, st.OK)
	assert.EqualValues(t, 5, st.ByClass["status"])
	assert.EqualValues(t, 45, st.Releases["1.0.0"])
	assert.Contains(t, st.String(), "failed: 5")
}

func TestRunRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	st := loadgen.Run(t.Context(), loadgen.Options{URL: url, Workers: 1, Duration: 5 * time.Second, MaxRequests: 3})
	require.EqualValues(t, 3, st.Failed)
	assert.EqualValues(t, 3, st.ByClass["refused"])
}

func TestRunOpenKeepsTheRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Release", "1")
	}))
	defer srv.Close()
	begin := time.Now()
	samples := loadgen.RunOpen(t.Context(), loadgen.OpenOptions{URL: srv.URL, Rate: 200, Duration: time.Second, KeepAlive: true})
	took := time.Since(begin)
	require.Len(t, samples, 200)
	assert.InDelta(t, 1.0, took.Seconds(), 0.5)
	for _, s := range samples {
		assert.Empty(t, s.Class)
		assert.Equal(t, "1", s.Release)
	}
	assert.True(t, samples[199].Start.Sub(samples[0].Start) > 900*time.Millisecond, "starts are spread over the duration")
}

func TestRunOpenEndsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	samples := loadgen.RunOpen(ctx, loadgen.OpenOptions{URL: srv.URL, Rate: 100, Duration: time.Hour, KeepAlive: true})
	assert.Less(t, time.Since(begin), 5*time.Second, "the context ends the run, not Duration")
	require.NotEmpty(t, samples)
	assert.Less(t, len(samples), 100)
	assert.True(t, slices.IsSortedFunc(samples, func(a, b loadgen.Sample) int { return a.Start.Compare(b.Start) }))
}

func TestRunIdlePoolReusesIdleConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Release", "1")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	samples := loadgen.RunIdlePool(ctx, loadgen.IdlePoolOptions{URL: srv.URL, Method: "POST", Body: []byte("x"), Conns: 3,
		MinIdle: 50 * time.Millisecond, MaxIdle: 100 * time.Millisecond})
	require.GreaterOrEqual(t, len(samples), 9, "each client sends every 50-100 ms")
	reused := 0
	for _, s := range samples {
		assert.Empty(t, s.Class)
		if s.IdleConn >= 50*time.Millisecond {
			reused++
		}
	}
	assert.EqualValues(t, 3, conns.Load(), "one connection per client")
	assert.Equal(t, len(samples)-3, reused, "every request but the first of each client reused a connection idle at least MinIdle")
}
