package beamdeploy

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnabled(t *testing.T) {
	tests := []struct {
		name  string
		value string
		unset bool
		want  bool
	}{
		{name: "unset", unset: true, want: false},
		{name: "empty", value: "", want: false},
		{name: "zero", value: "0", want: false},
		{name: "one", value: "1", want: true},
		{name: "true", value: "true", want: true},
		{name: "TRUE", value: "TRUE", want: true},
		{name: "yes mixed case", value: "YeS", want: true},
		{name: "on", value: "on", want: true},
		{name: "whitespace", value: " \ton\n", want: true},
		{name: "false", value: "false", want: false},
		{name: "no", value: "no", want: false},
		{name: "off", value: "off", want: false},
		{name: "two", value: "2", want: false},
		{name: "y", value: "y", want: false},
		{name: "enabled", value: "enabled", want: false},
		{name: "inner space", value: "o n", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvEnabled, tt.value)
			if tt.unset {
				require.NoError(t, os.Unsetenv(EnvEnabled))
			}
			assert.Equal(t, tt.want, Enabled())
		})
	}
}

func TestInstance(t *testing.T) {
	t.Setenv(EnvApp, "hello")
	t.Setenv(EnvUnit, "hello@green.service")
	t.Setenv(EnvColor, "green")
	t.Setenv(EnvRelease, "1.2.3")

	t.Setenv(EnvEnabled, "")
	assert.Zero(t, Instance(), "not managed: zero value even with BEAMDEPLOY_* set")

	t.Setenv(EnvEnabled, "1")
	assert.Equal(t, InstanceInfo{App: "hello", Unit: "hello@green.service", Color: "green", Release: "1.2.3"}, Instance())

	t.Setenv(EnvRelease, "")
	assert.Empty(t, Instance().Release)
}
