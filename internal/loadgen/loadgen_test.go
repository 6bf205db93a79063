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
