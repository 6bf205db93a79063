package parent

import (
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/stretchr/testify/assert"
)

func TestPruneListKeepsProtectedAndRecent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rels []release.Release
	deployed := map[string]time.Time{}
	for i, v := range []string{"1", "2", "3", "4", "5", "6", "7"} {
		rels = append(rels, release.Release{Version: v})
		deployed[v] = t0.Add(time.Duration(i) * time.Hour)
	}
	rels = append(rels, release.Release{Version: "8-staged"}) // never deployed
	deployed["2"] = t0.Add(100 * time.Hour)                   // rolled back to 2 most recently

	tests := []struct {
		name    string
		protect []string
		keep    int
		want    []string
	}{
		{"keep 3", nil, 3, []string{"5", "4", "3", "1"}},
		{"keep 3, old rollback target protected", []string{"1"}, 3, []string{"5", "4", "3"}},
		{"keep 1, active and previous protected", []string{"2", "7"}, 1, []string{"6", "5", "4", "3", "1"}},
		{"keep more than there are", nil, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pruneList(rels, deployed, tt.protect, tt.keep)
			assert.Equal(t, tt.want, got)
			assert.NotContains(t, got, "8-staged", "never-deployed releases are kept")
		})
	}
}

func TestPreviousRelease(t *testing.T) {
	t0 := time.Now()
	d := map[string]time.Time{"1": t0, "2": t0.Add(time.Minute), "3": t0.Add(2 * time.Minute)}
	assert.Equal(t, "2", previousRelease(d, "3"))
	assert.Equal(t, "3", previousRelease(d, "1"), "after a rollback to 1, the previous is the newest other")
	assert.Equal(t, "", previousRelease(map[string]time.Time{"1": t0}, "1"))
}

func TestStatusLine(t *testing.T) {
	assert.Contains(t, statusLine("hello", swapStatusFixture()), "serving hello 1.1.0 on hello@green.service (pid 42); last swap 0.42 s ok")
}
