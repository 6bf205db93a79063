package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorTableRoundTrip sends every row's parent-side sentinels over
// the wire as the parent does and checks what the client makes of them:
// the row's code and status, errors.Is with the row's sentinel and no
// other row's, and the row's exit code.
func TestErrorTableRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range failures {
		require.False(t, seen[f.code], "code %s has two rows", f.code)
		seen[f.code] = true
		from := f.from
		if f.code == CodeInternal {
			from = []error{errors.New("disk on fire")}
		}
		for _, s := range from {
			err := fmt.Errorf("doing the thing: %w", s)
			code, status := CodeOf(err)
			assert.Equal(t, f.code, code, "%v", s)
			assert.Equal(t, f.status, status, "%v", s)

			b, merr := json.Marshal(ErrorOf(err))
			require.NoError(t, merr)
			var got Error
			require.NoError(t, json.Unmarshal(b, &got))
			assert.Equal(t, err.Error(), got.Message)
			wrapped := fmt.Errorf("beamdeploy upgrade: %w", &got)
			for _, g := range failures {
				if g.is != nil {
					assert.Equal(t, g.code == f.code, errors.Is(wrapped, g.is), "%s: errors.Is(%v)", f.code, g.is)
				}
			}
			assert.Equal(t, f.exit, ExitCode(wrapped), "%s", f.code)
		}
	}
	assert.Equal(t, ExitNotRunning, ExitCode(fmt.Errorf("status: %w", ErrNotRunning)))
	assert.Equal(t, ExitOK, ExitCode(nil))
	assert.Equal(t, ExitFailure, ExitCode(errors.New("other")))
	assert.False(t, errors.Is(&Error{Code: "from_a_newer_parent"}, ErrNotFound), "an unknown code matches nothing")
}

// TestErrorTableMatchesProtocolDoc keeps docs/protocol.md's table of
// codes in step with the one in the code: every code documented, with
// its status among the documented ones, and no documented code unknown.
func TestErrorTableMatchesProtocolDoc(t *testing.T) {
	b, err := os.ReadFile(protocolDoc)
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9, ]+) \\|")
	doc := map[string][]int{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		for _, s := range strings.Split(m[2], ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			require.NoError(t, err)
			doc[m[1]] = append(doc[m[1]], n)
		}
	}
	for _, f := range failures {
		require.Contains(t, doc, f.code, "docs/protocol.md does not document code %s", f.code)
		assert.Contains(t, doc[f.code], f.status, "docs/protocol.md: status of %s", f.code)
		delete(doc, f.code)
	}
	assert.Empty(t, doc, "docs/protocol.md documents codes the parent never sends")
}
