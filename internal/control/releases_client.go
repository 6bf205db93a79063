package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
)

// Releases lists the staged releases.
func (c *Client) Releases(ctx context.Context) (Releases, error) {
	var r Releases
	err := c.getJSON(ctx, PathReleases, nil, &r)
	return r, err
}

// Stage uploads a release tarball without swapping to it.
func (c *Client) Stage(ctx context.Context, filename string, tarball io.Reader, opts UpgradeOptions, onProgress func(Progress)) (Staged, error) {
	var st Staged
	err := c.streamTo(ctx, PathStage, opts.query(filename), tarball, "application/gzip", onProgress, func(line []byte) error {
		return json.Unmarshal(line, &st)
	}, TypeStaged)
	return st, err
}

// Rollback swaps to the previous release, or to the version to.
func (c *Client) Rollback(ctx context.Context, to string, opts SwapOptions, onProgress func(Progress)) (Result, error) {
	var q url.Values
	if to != "" {
		q = url.Values{"to": {to}}
	}
	return c.stream(ctx, PathRollback, opts.query(q), nil, "", onProgress)
}

func (o UpgradeOptions) query(filename string) url.Values {
	q := url.Values{"filename": {filename}}
	if o.SHA256 != "" {
		q.Set("sha256", o.SHA256)
	}
	if o.Force {
		q.Set("force", "1")
	}
	if o.Version != "" {
		q.Set("version", o.Version)
	}
	return o.SwapOptions.query(q)
}

// decodeFinal decodes the final message of a stream.
func decodeFinal(line []byte, v any) error {
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	return nil
}
