package parent

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func TestDecide(t *testing.T) {
	const gid = 990 // the beamdeploy group
	live := []tracked{
		{Unit: "hello@blue.service", Invocation: "b1"},               // active
		{Unit: "hello@green.service", Invocation: "g1", Restarts: 2}, // incoming, adopted after 2 restarts
		{Unit: "other@blue.service", Invocation: "o1"},               // cannot happen; never an instance of hello anyway
		{Unit: "hello@red.service", Invocation: "r1"},                // nor can this
	}
	inst := func(unit string) access { return access{instance: true, unit: unit} }
	tests := []struct {
		name string
		p    peer
		live []tracked
		want access
	}{
		{"root", peer{UID: 0, Groups: []int{0}}, live, access{deploy: true}},
		{"deploy group member", peer{UID: 1000, Groups: []int{1000, gid}}, live, access{deploy: true}},
		{"user", peer{UID: 1000, Groups: []int{1000}}, live, access{}},
		{"unidentified root", peer{UID: 0, Err: assert.AnError}, live, access{}},
		{"active instance", peer{UID: 61234, Unit: "hello@blue.service", Invocation: "b1"}, live, inst("hello@blue.service")},
		{"root in the active instance", peer{UID: 0, Unit: "hello@blue.service", Invocation: "b1"}, live, access{deploy: true, instance: true, unit: "hello@blue.service"}},
		{"incoming instance", peer{UID: 65534, Unit: "hello@green.service", Invocation: "g1", Restarts: 2}, live, inst("hello@green.service")},
		{"restarted by systemd", peer{UID: 65534, Unit: "hello@blue.service", Invocation: "b2", Restarts: 1}, live, inst("hello@blue.service")},
		{"restarted again by systemd", peer{UID: 65534, Unit: "hello@green.service", Invocation: "g3", Restarts: 3}, live, inst("hello@green.service")},
		{"restarted by someone else", peer{UID: 65534, Unit: "hello@blue.service", Invocation: "b2"}, live, access{}},
		{"restart count not grown", peer{UID: 65534, Unit: "hello@green.service", Invocation: "g2", Restarts: 2}, live, access{}},
		{"untracked colour", peer{UID: 65534, Unit: "hello@green.service", Invocation: "g1"}, live[:1], access{}},
		{"being started", peer{UID: 65534, Unit: "hello@green.service", Invocation: "g9"}, []tracked{{Unit: "hello@green.service", Starting: true}}, inst("hello@green.service")},
		{"being started, no invocation", peer{UID: 65534, Unit: "hello@green.service"}, []tracked{{Unit: "hello@green.service", Starting: true}}, access{}},
		{"nothing tracked", peer{UID: 65534, Unit: "hello@blue.service", Invocation: "b1"}, nil, access{}},
		{"unit lookup failed", peer{UID: 65534, Unit: "hello@blue.service", Invocation: "b1", UnitErr: assert.AnError}, live, access{}},
		{"unit lookup failed for a deployer", peer{UID: 1000, Groups: []int{gid}, UnitErr: assert.AnError}, live, access{deploy: true}},
		{"user manager", peer{UID: 1000, Unit: "user@1000.service", Invocation: "u1"}, live, access{}},
		{"other app's instance", peer{UID: 65534, Unit: "other@blue.service", Invocation: "o1"}, live, access{}},
		{"lookalike colour", peer{UID: 65534, Unit: "hello@red.service", Invocation: "r1"}, live, access{}},
		{"bare colour", peer{UID: 65534, Unit: "blue.service", Invocation: "b1"}, append(live, tracked{Unit: "blue.service", Invocation: "b1"}), access{}},
		{"longer app name", peer{UID: 65534, Unit: "xhello@blue.service", Invocation: "b1"}, append(live, tracked{Unit: "xhello@blue.service", Invocation: "b1"}), access{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, decide("hello", gid, tt.p, tt.live))
			rev := slices.Clone(tt.live)
			slices.Reverse(rev)
			assert.Equal(t, tt.want, decide("hello", gid, tt.p, rev), "order of the tracked instances")
		})
	}
	t.Run("no deploy group", func(t *testing.T) {
		assert.Equal(t, access{}, decide("hello", -1, peer{UID: 1000, Groups: []int{1000, -1}}, nil))
	})
}

func TestTrackedOf(t *testing.T) {
	blue := &swap.Instance{Unit: "hello@blue.service", Color: swap.Blue, InvocationID: "b1", Restarts: 1}
	green := &swap.Instance{Unit: "hello@green.service", Color: swap.Green, InvocationID: "g1"}
	assert.Empty(t, trackedOf("hello", swap.Status{}))
	assert.Equal(t, []tracked{{Unit: "hello@blue.service", Invocation: "b1", Restarts: 1}},
		trackedOf("hello", swap.Status{Active: blue}))
	assert.Equal(t, []tracked{{Unit: "hello@blue.service", Invocation: "b1", Restarts: 1}, {Unit: "hello@green.service", Starting: true}},
		trackedOf("hello", swap.Status{Active: blue, Phase: swap.PhaseStarting, Starting: swap.Green}))
	assert.Equal(t, []tracked{{Unit: "hello@blue.service", Invocation: "b1", Restarts: 1}, {Unit: "hello@green.service", Invocation: "g1"}},
		trackedOf("hello", swap.Status{Active: blue, Incoming: green}))
	assert.Equal(t, []tracked{{Unit: "hello@green.service", Invocation: "g1"}, {Unit: "hello@blue.service", Invocation: "b1", Restarts: 1}},
		trackedOf("hello", swap.Status{Active: green, Draining: blue}))
	assert.Empty(t, trackedOf("hello", swap.Status{Active: &swap.Instance{Unit: "hello@blue.service"}}), "an instance without invocation is not tracked")
}

func TestColorOf(t *testing.T) {
	for unit, want := range map[string]swap.Color{"hello@blue.service": swap.Blue, "hello@green.service": swap.Green} {
		c, err := colorOf("hello", unit)
		assert.NoError(t, err)
		assert.Equal(t, want, c)
	}
	for _, unit := range []string{"blue.service", "green", "hello@blue", "other@blue.service", "xhello@blue.service", "hello@red.service", "hello@blue.service.service", ""} {
		_, err := colorOf("hello", unit)
		assert.Error(t, err, unit)
	}
}

// Only uids an instance can have are worth asking systemd about; the uid
// alone never makes an instance (TestDecide).
func TestUIDFilter(t *testing.T) {
	dynamic := uidFilter(config.RunAs{User: "bd-hello", Dynamic: true})
	assert.True(t, dynamic(config.DynamicUIDMin))
	assert.True(t, dynamic(config.DynamicUIDMax))
	assert.False(t, dynamic(1000))
	assert.False(t, dynamic(65534), "nobody is outside the dynamic range")
	root := uidFilter(config.RunAs{})
	assert.True(t, root(1000), "a root instance may run processes as any uid")
	static := uidFilter(config.RunAs{User: "nobody"})
	assert.True(t, static(65534))
	assert.False(t, static(1000))
	unknown := uidFilter(config.RunAs{User: "bdtest-no-such-user"})
	assert.True(t, unknown(1000), "when in doubt, systemd is asked")
}
