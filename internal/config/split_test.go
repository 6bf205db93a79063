package config_test

import (
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"bin/hello", []string{"bin/hello"}},
		{"  bin/hello  -listen 127.0.0.1:80 ", []string{"bin/hello", "-listen", "127.0.0.1:80"}},
		{`bin/x 'a b' "c \"d\"" e\ f`, []string{"bin/x", "a b", `c "d"`, "e f"}},
		{`bin/x '' ""`, []string{"bin/x", "", ""}},
		{`bin/x '$HOME'`, []string{"bin/x", "$HOME"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.SplitCommand(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	for _, bad := range []string{`bin/x 'open`, `bin/x "open`} {
		_, err := config.SplitCommand(bad)
		require.ErrorIs(t, err, config.ErrInvalid, bad)
	}
}
