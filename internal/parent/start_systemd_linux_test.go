package parent

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// A parent that could not list its instances at start (swap.Machine.Restore
// lets swaps through) swaps without knowing what runs: its first swap
// starts blue, which may be the instance serving. The swap fails, and its
// rollback leaves that unit alone: it did not start it.
func TestSystemdStartLeavesAUnitItDidNotStartRunning(t *testing.T) {
	beamtest.RequireSystemd(t)
	app := beamtest.UnitName(t, "")
	unit := instanceUnit(app, swap.Blue)
	um := sleepUnit(t, unit)
	store := &release.Store{Dir: t.TempDir()}
	_, err := store.Stage(t.Context(), "app.tar.gz", bytes.NewReader(tarball(t, "1")), release.StageOptions{Version: "1.0.0"})
	require.NoError(t, err)
	rt := &instances{app: app, cfg: config.Config{Exec: []string{"/bin/sleep", "300"}}, paths: config.Paths{State: t.TempDir()},
		self: "/bin/true", units: um, releases: store, log: slog.New(slog.DiscardHandler)}

	_, err = swap.New(rt, swap.Options{}).Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	require.ErrorIs(t, err, units.ErrUnitActive)
	assert.ErrorContains(t, err, "systemctl restart "+app, "tells the operator how to adopt it")
	u, err := um.Unit(t.Context(), unit)
	require.NoError(t, err)
	assert.True(t, u.Running(), "the unit the swap did not start still runs (state %s)", u.ActiveState)
}
