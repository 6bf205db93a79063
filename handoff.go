package beamdeploy

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/control"
)

// EnvSocket ("BEAMDEPLOY_SOCKET") holds the path of the parent's control
// socket; the parent sets it for its instances.
const EnvSocket = contract.EnvSocket

// ErrNotManaged is returned by the handoff and peer functions when the
// process does not run under beamdeploy (BEAM_DEPLOY unset, or no
// BEAMDEPLOY_SOCKET).
var ErrNotManaged = errors.New("beamdeploy: not running under beamdeploy")

// Errors the parent reports, as the SDK's functions return them (matched
// with errors.Is; the message is the parent's, which says what to do).
var (
	// ErrHandoffNotFound: Get or Delete of a key that is not in the
	// handoff store.
	ErrHandoffNotFound = errors.New("beamdeploy: handoff key not found")
	// ErrHandoffLimit: Put of a value over 64 KiB, or into a full store.
	ErrHandoffLimit = errors.New("beamdeploy: handoff limit exceeded")
	// ErrInvalidKey: a handoff key that is not 1-256 printable ASCII
	// bytes without spaces.
	ErrInvalidKey = errors.New("beamdeploy: invalid handoff key")
	// ErrPermissionDenied: the parent does not take this process for one
	// of the app's instances.
	ErrPermissionDenied = errors.New("beamdeploy: permission denied")
)

// sdkErrors maps the control client's sentinels to the SDK's own.
var sdkErrors = []struct{ from, to error }{
	{control.ErrNotFound, ErrHandoffNotFound},
	{control.ErrLimit, ErrHandoffLimit},
	{control.ErrBadRequest, ErrInvalidKey},
	{control.ErrPermissionDenied, ErrPermissionDenied},
}

// parentError is a failure the parent reported, matching one of the
// SDK's errors.
type parentError struct{ is, err error }

func (e *parentError) Error() string   { return e.err.Error() }
func (e *parentError) Unwrap() []error { return []error{e.is, e.err} }

// sdkError makes err match the SDK's error for it, if it has one.
func sdkError(err error) error {
	for _, m := range sdkErrors {
		if errors.Is(err, m.from) {
			return &parentError{is: m.to, err: err}
		}
	}
	return err
}

func parent() (*control.Client, error) {
	sock := os.Getenv(EnvSocket)
	if !Enabled() || sock == "" {
		return nil, ErrNotManaged
	}
	return control.NewClient(os.Getenv(EnvApp), sock), nil
}

func withParent[T any](f func(*control.Client) (T, error)) (T, error) {
	c, err := parent()
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.Close()
	v, err := f(c)
	return v, sdkError(err)
}

// Put stores value under key in the handoff store the parent keeps for the
// app. It returns once the value is on disk; the store survives swaps and
// parent restarts. Keys are 1-256 printable ASCII bytes without spaces;
// values at most 64 KiB. Outside beamdeploy it returns ErrNotManaged.
func Put(ctx context.Context, key string, value []byte) error {
	_, err := withParent(func(c *control.Client) (struct{}, error) { return struct{}{}, c.HandoffPut(ctx, key, value) })
	return err
}

// Get returns the value stored under key, or an error matching
// ErrHandoffNotFound.
func Get(ctx context.Context, key string) ([]byte, error) {
	return withParent(func(c *control.Client) ([]byte, error) { return c.HandoffGet(ctx, key) })
}

// Delete removes key, or returns an error matching ErrHandoffNotFound.
func Delete(ctx context.Context, key string) error {
	_, err := withParent(func(c *control.Client) (struct{}, error) { return struct{}{}, c.HandoffDelete(ctx, key) })
	return err
}

// List returns every entry of the handoff store.
func List(ctx context.Context) (map[string][]byte, error) {
	return withParent(func(c *control.Client) (map[string][]byte, error) { return c.HandoffList(ctx) })
}

// Peers names the instances around this one in a swap: Incoming replaces
// it (set from the moment the new instance is ready until this one is
// stopped), Outgoing is the one it replaced. Empty means none.
type Peers struct {
	Incoming string
	Outgoing string
}

// CurrentPeers returns this instance's peers now.
func CurrentPeers(ctx context.Context) (Peers, error) {
	return withParent(func(c *control.Client) (Peers, error) {
		p, err := c.Peers(ctx, os.Getenv(EnvUnit))
		if err != nil {
			return Peers{}, fmt.Errorf("ask parent for peers: %w", err)
		}
		return Peers{Incoming: p.Incoming, Outgoing: p.Outgoing}, nil
	})
}

// IncomingPeer returns the unit replacing this instance, or "".
func IncomingPeer(ctx context.Context) (string, error) {
	p, err := CurrentPeers(ctx)
	return p.Incoming, err
}

// OutgoingPeer returns the unit this instance replaced, or "".
func OutgoingPeer(ctx context.Context) (string, error) {
	p, err := CurrentPeers(ctx)
	return p.Outgoing, err
}

// WaitCutover blocks until the swap that started this instance is over,
// then returns its peers. Call it after Ready: when it returns with a
// non-empty Outgoing, the old instance has stopped, so whatever it wrote
// to the handoff store while draining can be read with Get.
func WaitCutover(ctx context.Context) (Peers, error) {
	return withParent(func(c *control.Client) (Peers, error) {
		p, err := c.WaitCutover(ctx, os.Getenv(EnvUnit))
		if err != nil {
			return Peers{}, fmt.Errorf("wait for cutover: %w", err)
		}
		return Peers{Incoming: p.Incoming, Outgoing: p.Outgoing}, nil
	})
}
