package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

func keyPath(key string) string { return PathHandoff + "/" + url.PathEscape(key) }

// HandoffPut stores value under key in the parent's handoff store. It
// returns once the value is on disk.
func (c *Client) HandoffPut(ctx context.Context, key string, value []byte) error {
	resp, err := c.do(ctx, http.MethodPut, keyPath(key), nil, bytes.NewReader(value), "application/octet-stream")
	if err != nil {
		return fmt.Errorf("handoff put %q: %w", key, err)
	}
	resp.Body.Close()
	return nil
}

// HandoffGet returns the value of key; an error matching ErrNotFound when
// there is none.
func (c *Client) HandoffGet(ctx context.Context, key string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, keyPath(key), nil, nil, "")
	if err != nil {
		return nil, fmt.Errorf("handoff get %q: %w", key, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("handoff get %q: %w", key, err)
	}
	return b, nil
}

// HandoffDelete removes key; an error matching ErrNotFound when absent.
func (c *Client) HandoffDelete(ctx context.Context, key string) error {
	resp, err := c.do(ctx, http.MethodDelete, keyPath(key), nil, nil, "")
	if err != nil {
		return fmt.Errorf("handoff delete %q: %w", key, err)
	}
	resp.Body.Close()
	return nil
}

// HandoffList returns every entry.
func (c *Client) HandoffList(ctx context.Context) (map[string][]byte, error) {
	var h Handoff
	if err := c.getJSON(ctx, PathHandoff, nil, &h); err != nil {
		return nil, fmt.Errorf("handoff list: %w", err)
	}
	return h.Entries, nil
}

// Peers returns the instances replacing and replaced by unit.
func (c *Client) Peers(ctx context.Context, unit string) (Peers, error) {
	var p Peers
	err := c.getJSON(ctx, PathPeers, url.Values{"unit": {unit}}, &p)
	return p, err
}

// WaitCutover blocks until no swap involving unit is running, then returns
// its peers: for a new instance, Outgoing is the instance it replaced,
// which has stopped by then.
func (c *Client) WaitCutover(ctx context.Context, unit string) (Peers, error) {
	var p Peers
	err := c.getJSON(ctx, PathCutover, url.Values{"unit": {unit}}, &p)
	return p, err
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
