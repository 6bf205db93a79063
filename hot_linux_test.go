package beamdeploy

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// reportServer is a parent that answers every hot report with verdict and
// hands over the reports it got.
func reportServer(t *testing.T, verdict control.HotVerdict) (*control.Client, <-chan control.HotReport) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	reports := make(chan control.HotReport, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep control.HotReport
		if r.URL.Path != control.PathHotReport || json.NewDecoder(r.Body).Decode(&rep) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		reports <- rep
		_ = json.NewEncoder(w).Encode(verdict)
	})}
	go func() { _ = srv.Serve(ln) }() // ends at Close
	t.Cleanup(func() { _ = srv.Close() })
	c := control.NewClient("hello", path)
	t.Cleanup(c.Close)
	return c, reports
}

func TestHandOverRefusesInPlace(t *testing.T) {
	c, reports := reportServer(t, control.HotVerdict{Error: "refused"})
	assert.False(t, handOver(t.Context(), c, control.HotOrder{ID: "h1", Mode: control.HotInPlace, Argv: []string{"/bin/true"}}))
	rep := <-reports
	assert.Equal(t, "h1", rep.ID)
	assert.False(t, rep.OK)
	assert.Contains(t, rep.Error, `not "in_place"; declare "hot": "successor"`)
}

func TestHandOverReportsWhyItCouldNotStart(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	c, reports := reportServer(t, control.HotVerdict{Error: "refused"})
	assert.False(t, handOver(t.Context(), c, control.HotOrder{ID: "h2", Mode: control.HotSuccessor, Argv: []string{"/bin/true"}}))
	rep := <-reports
	assert.Equal(t, "h2", rep.ID)
	assert.False(t, rep.OK)
	assert.Contains(t, rep.Error, "no listeners to pass on")
}
