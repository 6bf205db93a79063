package units

import (
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func propsByName(t *testing.T, s Spec) map[string]sd.Property {
	t.Helper()
	props, err := s.properties()
	require.NoError(t, err)
	out := map[string]sd.Property{}
	for _, p := range props {
		out[p.Name] = p
	}
	return out
}

func TestPropertiesRestartAndFDs(t *testing.T) {
	p := propsByName(t, Spec{ExecStart: []string{"/bin/true"}, RestartDelay: 100 * time.Millisecond,
		FDs: []FD{{Num: 7, Name: "web"}}})
	assert.Equal(t, "on-failure", p["Restart"].Value.Value())
	assert.Equal(t, uint64(100_000), p["RestartUSec"].Value.Value())
	assert.Equal(t, uint32(StartLimitBurst), p["StartLimitBurst"].Value.Value())
	assert.Equal(t, "a(hs)", p["ExtraFileDescriptors"].Value.Signature().String())
	// ExecStart's third field is systemd's ignore-failure flag: a crash
	// must count as a failure, or Restart=on-failure never fires.
	assert.Equal(t, "a(sasb)", p["ExecStart"].Value.Signature().String())
	assert.Contains(t, p["ExecStart"].Value.String(), "], false")
}

func TestPropertiesWithoutRestart(t *testing.T) {
	p := propsByName(t, Spec{ExecStart: []string{"/bin/true"}})
	for _, name := range []string{"Restart", "RestartUSec", "StartLimitBurst", "ExtraFileDescriptors"} {
		assert.NotContains(t, p, name)
	}
}

func TestPropertiesDynamicUser(t *testing.T) {
	p := propsByName(t, Spec{ExecStart: []string{"/bin/true"}, User: "bd-hello", DynamicUser: true,
		StateDirectory: "beamdeploy/hello/data"})
	assert.Equal(t, "bd-hello", p["User"].Value.Value())
	assert.Equal(t, true, p["DynamicUser"].Value.Value())
	assert.Equal(t, []string{"beamdeploy/hello/data"}, p["StateDirectory"].Value.Value())

	p = propsByName(t, Spec{ExecStart: []string{"/bin/true"}})
	for _, name := range []string{"User", "DynamicUser", "StateDirectory"} {
		assert.NotContains(t, p, name, "root: systemd's defaults")
	}
}
