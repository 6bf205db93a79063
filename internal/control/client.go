package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
)

// Client talks to one app's parent.
type Client struct {
	App    string
	Socket string
	// Message, when set, is sent with every swap the client asks for
	// (upgrade, hot upgrade, reload, swap, rollback); the parent records it
	// in the swap's history entry. See CheckMessage.
	Message string
	http    *http.Client
}

// NewClient returns a client for the parent of app listening on socket.
func NewClient(app, socket string) *Client {
	tr := &http.Transport{
		DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return dialUnix(ctx, socket) },
		DisableCompression: true,
		IdleConnTimeout:    IdleConnTimeout,
	}
	return &Client{App: app, Socket: socket, http: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string) (*http.Response, error) {
	// path is already escaped (handoff keys may contain '/').
	u := "http://beamdeploy" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s: %w", path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, NotRunningError(c.App, c.Socket, err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	var e Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &e) != nil || e.Message == "" {
		return fmt.Errorf("parent answered %s: %s", resp.Status, b)
	}
	return &e
}

// Status returns the parent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	if err := c.getJSON(ctx, PathStatus, nil, &s); err != nil {
		return Status{}, err
	}
	return s, nil
}

// SwapOptions qualify a swap request.
type SwapOptions struct {
	// Detach has the parent run the swap on its own, whatever becomes of
	// this call: it returns once the swap is under way (an upload read and
	// staged) with a Result whose MessageType is TypeDetached and whose ID
	// and Release name the swap. Follow it with [Client.Wait].
	Detach bool
}

func (o SwapOptions) query(q url.Values) url.Values {
	if o.Detach {
		if q == nil {
			q = url.Values{}
		}
		q.Set("detach", "1")
	}
	return q
}

// UpgradeOptions qualify an upload.
type UpgradeOptions struct {
	SwapOptions
	SHA256 string // expected tarball checksum, hex; optional
	Force  bool   // replace a staged release of the same version
	// Version is the release's version when the file name carries none
	// (release.ParseUpload); empty: the file name says.
	Version string
}

// Upgrade uploads a release tarball, which the parent stages and swaps to.
// onProgress is called for each progress message. It returns once the swap
// is over.
func (c *Client) Upgrade(ctx context.Context, filename string, tarball io.Reader, opts UpgradeOptions, onProgress func(Progress)) (Result, error) {
	return c.stream(ctx, PathUpgrade, opts.query(filename), tarball, "application/gzip", onProgress)
}

// Reload swaps to the newest staged release not deployed yet, or into a
// fresh instance of the active release.
func (c *Client) Reload(ctx context.Context, opts SwapOptions, onProgress func(Progress)) (Result, error) {
	return c.stream(ctx, PathReload, opts.query(nil), nil, "", onProgress)
}

// Wait follows a swap to its end like the call that started it: the swap
// id, or with id "" the running swap, or else the last one. A swap that
// ended returns its recorded result at once. An unknown id is an error
// matching ErrNotFound. Cancelling ctx stops following; the swap goes on.
func (c *Client) Wait(ctx context.Context, id string, onProgress func(Progress)) (Result, error) {
	var q url.Values
	if id != "" {
		q = url.Values{"swap": {id}}
	}
	var r Result
	err := c.readStream(ctx, http.MethodGet, PathWait, q, nil, "", onProgress, func(line []byte) error { return decodeFinal(line, &r) }, TypeResult)
	return r, err
}

// Swap swaps to a staged release.
func (c *Client) Swap(ctx context.Context, release string, onProgress func(Progress)) (Result, error) {
	b, err := json.Marshal(SwapRequest{Release: release})
	if err != nil {
		return Result{}, fmt.Errorf("encode swap request: %w", err)
	}
	return c.stream(ctx, PathSwap, nil, bytes.NewReader(b), "application/json", onProgress)
}

// stream posts a swap request to path and reads its progress stream,
// which ends with a result, or with ?detach=1 a Detached message (returned
// as a Result of MessageType TypeDetached).
func (c *Client) stream(ctx context.Context, path string, q url.Values, body io.Reader, ctype string, onProgress func(Progress)) (Result, error) {
	var r Result
	if q.Get("detach") == "1" {
		err := c.streamTo(ctx, path, withMessage(q, c.Message), body, ctype, onProgress, func(line []byte) error {
			var d Detached
			err := decodeFinal(line, &d)
			r.MessageType, r.ID, r.Release = d.MessageType, d.Swap, d.Release
			return err
		}, TypeDetached)
		return r, err
	}
	err := c.streamTo(ctx, path, withMessage(q, c.Message), body, ctype, onProgress, func(line []byte) error { return decodeFinal(line, &r) }, TypeResult)
	return r, err
}

// streamTo posts to path and reads the progress stream it answers with
// (see ReadStream).
func (c *Client) streamTo(ctx context.Context, path string, q url.Values, body io.Reader, ctype string,
	onProgress func(Progress), decode func([]byte) error, final string) error {
	return c.readStream(ctx, http.MethodPost, path, q, body, ctype, onProgress, decode, final)
}

func (c *Client) readStream(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string,
	onProgress func(Progress), decode func([]byte) error, final string) error {
	resp, err := c.do(ctx, method, path, q, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = ReadStream(resp.Body, final, onProgress, decode)
	if errors.Is(err, errNoFinal) {
		return fmt.Errorf("%w; check: journalctl -u %s.service", err, c.App)
	}
	return err
}
