package loadgen_test

import (
	"net/http"
	"net/http/httptest"
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
