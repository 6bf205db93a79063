package release

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readCounter counts the bytes read through it.
type readCounter struct {
	r io.Reader
	n int
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestPinRefusesRemoveAndForcedStage(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	_, err := sb.stage(t, "hello-1.0.tar.gz", tgz(t, ent{name: "v", body: "a"}), StageOptions{})
	require.NoError(t, err)
	unpin1, err := sb.store.Pin("1.0", "swap s1")
	require.NoError(t, err)
	unpin2, err := sb.store.Pin("1.0", "the active instance")
	require.NoError(t, err)

	err = sb.store.Remove("1.0")
	require.ErrorIs(t, err, ErrInUse)
	assert.ErrorContains(t, err, "release 1.0 is used by swap s1 and the active instance; it cannot be removed now")
	in := &readCounter{r: bytes.NewReader(tgz(t, ent{name: "v", body: "b"}))}
	_, err = sb.store.Stage(t.Context(), "hello-1.0.tar.gz", in, StageOptions{Force: true})
	require.ErrorIs(t, err, ErrInUse)
	assert.ErrorContains(t, err, "it cannot be replaced now")
	assert.Zero(t, in.n, "refused before the upload is read")
	// Without --force nothing would change: an identical upload is reused.
	same, err := sb.stage(t, "hello-1.0.tar.gz", tgz(t, ent{name: "v", body: "a"}), StageOptions{})
	require.NoError(t, err)
	assert.True(t, same.Reused)

	unpin1()
	unpin1() // a second call does not drop the other pin
	require.ErrorIs(t, sb.store.Remove("1.0"), ErrInUse)
	unpin2()
	require.NoError(t, sb.store.Remove("1.0"))
	_, err = sb.store.Get("1.0")
	require.ErrorIs(t, err, ErrNotFound)
	sb.requireOnly(t)
}

func TestPinNeedsAStagedRelease(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	_, err := sb.store.Pin("9.9", "swap s1")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = sb.store.Pin("../x", "swap s1")
	require.ErrorIs(t, err, ErrInvalidRelease)
}

// An upload pins what it staged: if a forced stage replaced it meanwhile,
// the pin fails instead of handing the swap other files.
func TestPinStagedRefusesReplacedContent(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	a, err := sb.stage(t, "hello-1.0.tar.gz", tgz(t, ent{name: "v", body: "a"}), StageOptions{})
	require.NoError(t, err)
	b, err := sb.stage(t, "hello-1.0.tar.gz", tgz(t, ent{name: "v", body: "b"}), StageOptions{Force: true})
	require.NoError(t, err)
	_, err = sb.store.PinStaged(a, "upgrade")
	require.ErrorIs(t, err, ErrExists)
	unpin, err := sb.store.PinStaged(b, "upgrade")
	require.NoError(t, err)
	unpin()
}

// A forced stage that was already extracting when the version was pinned
// (a swap chose it meanwhile) is refused when it would replace it, and
// leaves the pinned release as it was.
func TestForcedStageRacingAPinIsRefused(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	a, err := sb.stage(t, "hello-1.0.tar.gz", tgz(t, ent{name: "v", body: "a"}), StageOptions{})
	require.NoError(t, err)

	data := tgz(t, ent{name: "v", body: "b"})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := sb.store.Stage(t.Context(), "hello-1.0.tar.gz", pr, StageOptions{Force: true})
		done <- err
	}()
	_, err = pw.Write(data[:len(data)/2]) // returns once Stage read it: past its early check
	require.NoError(t, err)
	unpin, err := sb.store.Pin("1.0", "swap s1")
	require.NoError(t, err)
	defer unpin()
	_, err = pw.Write(data[len(data)/2:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())

	err = <-done
	require.ErrorIs(t, err, ErrInUse)
	assert.ErrorContains(t, err, "used by swap s1")
	got, err := sb.store.Get("1.0")
	require.NoError(t, err)
	assert.Equal(t, a.SHA256, got.SHA256)
	v, err := os.ReadFile(filepath.Join(got.Dir, "v"))
	require.NoError(t, err)
	assert.Equal(t, "a", string(v), "the pinned release's files are untouched")
	sb.requireOnly(t, "1.0")
}
