package parent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/release"
)

func TestHotCompatible(t *testing.T) {
	rel := func(version, compat, hot string) release.Release {
		return release.Release{Version: version, Compat: compat, Hot: hot}
	}
	for _, tt := range []struct {
		name      string
		cur, next release.Release
		want      string // "" = compatible
	}{
		{"same key, default modes", rel("1", "k", ""), rel("2", "k", ""), ""},
		{"default is successor", rel("1", "k", ""), rel("2", "k", "successor"), ""},
		{"both in place", rel("1", "k", "in_place"), rel("2", "k", "in_place"), ""},
		{"new has no key", rel("1", "k", ""), rel("2", "", ""), `release 2 declares no "compat" key`},
		{"running has no key", rel("1", "", ""), rel("2", "k", ""), `the running release 1 declares no "compat" key`},
		{"other key", rel("1", "k", ""), rel("2", "j", ""), `compat key "j"`},
		{"running in place, new successor", rel("1", "k", "in_place"), rel("2", "k", ""), `declares "hot": "successor", the running release 1 "in_place"`},
		{"running successor, new in place", rel("1", "k", "successor"), rel("2", "k", "in_place"), `declares "hot": "in_place", the running release 1 "successor"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := hotCompatible("hello", tt.cur, tt.next)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, errHotUnsupported)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "beamdeploy upgrade hello", "suggests a blue-green swap")
		})
	}
}
