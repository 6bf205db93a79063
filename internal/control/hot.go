package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Hot upgrades (docs/protocol.md): the CLI posts a tarball to
// PathHotUpgrade; the parent stages it, checks it, and hands a HotOrder to
// the active instance, which waits for one on PathHotWait. In mode
// HotSuccessor the instance starts the new process and reports its pid on
// PathHotReport; the parent answers with a HotVerdict once systemd has made
// that process the unit's main process. In mode HotInPlace the instance
// loads the new release itself (RELOADING=1 ... READY=1) and reports its
// own pid; the parent answers once the unit is active again with the same
// main process.
const (
	PathHotUpgrade = "/v1/hot-upgrade" // POST, like PathUpgrade
	PathHotWait    = "/v1/hot/wait"    // GET ?unit=UNIT, long poll; answers a HotOrder, or 204 No Content: poll again
	PathHotReport  = "/v1/hot/report"  // POST HotReport; answers a HotVerdict
)

// The hot upgrade modes a release declares in its manifest ("hot") and a
// HotOrder carries.
const (
	HotSuccessor = "successor" // the running process starts the new release, which takes over the unit
	HotInPlace   = "in_place"  // the running process loads the new release's code itself
)

// TypeHotOrder is the message type of a HotOrder.
const TypeHotOrder = "hot_order"

// CodeHotUnsupported is returned when the active instance cannot be hot
// upgraded: its app did not register, or the releases are incompatible.
const CodeHotUnsupported = "hot_unsupported"

// ErrHotUnsupported matches errors with CodeHotUnsupported.
var ErrHotUnsupported = errors.New("control: hot upgrade not possible")

// HotOrder tells an instance to hand over to a new process.
type HotOrder struct {
	MessageType string        `json:"message_type"` // TypeHotOrder
	ID          string        `json:"id"`
	Release     string        `json:"release"`
	Mode        string        `json:"mode"`       // HotSuccessor or HotInPlace
	Argv        []string      `json:"argv"`       // HotSuccessor: the command to start, absolute path first
	Dir         string        `json:"dir"`        // the new release's directory (working directory of Argv)
	Env         []string      `json:"env"`        // KEY=value set on top of the instance's environment
	Timeout     time.Duration `json:"timeout_ns"` // to become ready (successor) or to load (in place)
	Drain       time.Duration `json:"drain_ns"`   // to exit after SIGTERM when it did not
}

// HotReport is an instance's answer to a HotOrder.
type HotReport struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	PID   int    `json:"pid,omitempty"`   // the new process (HotSuccessor), the reporting one (HotInPlace)
	Error string `json:"error,omitempty"` // why not
}

// HotVerdict tells the old process whether to go (drain and exit).
type HotVerdict struct {
	Proceed bool   `json:"proceed"`
	Error   string `json:"error,omitempty"`
}

// HotUpgrade uploads a release tarball for a hot upgrade of the active
// instance. It returns once the new process serves and the old one drains.
func (c *Client) HotUpgrade(ctx context.Context, filename string, tarball io.Reader, opts UpgradeOptions, onProgress func(Progress)) (Result, error) {
	return c.stream(ctx, PathHotUpgrade, opts.query(filename), tarball, "application/gzip", onProgress)
}

// HotWait blocks until the parent orders unit to hand over, or ctx ends.
// The parent ends a poll without an order after a while (204 No
// Content); HotWait then polls again.
func (c *Client) HotWait(ctx context.Context, unit string) (HotOrder, error) {
	for {
		resp, err := c.do(ctx, http.MethodGet, PathHotWait, url.Values{"unit": {unit}}, nil, "")
		if err != nil {
			return HotOrder{}, err
		}
		if resp.StatusCode == http.StatusNoContent {
			resp.Body.Close()
			continue
		}
		var o HotOrder
		err = json.NewDecoder(io.LimitReader(resp.Body, MaxFrame)).Decode(&o)
		resp.Body.Close()
		if err != nil {
			return HotOrder{}, fmt.Errorf("decode %s: %w", PathHotWait, err)
		}
		return o, nil
	}
}

// HotReport reports the outcome of a HotOrder and returns the verdict.
func (c *Client) HotReport(ctx context.Context, r HotReport) (HotVerdict, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return HotVerdict{}, fmt.Errorf("encode hot report: %w", err)
	}
	resp, err := c.do(ctx, http.MethodPost, PathHotReport, nil, bytes.NewReader(b), "application/json")
	if err != nil {
		return HotVerdict{}, err
	}
	defer resp.Body.Close()
	var v HotVerdict
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxFrame)).Decode(&v); err != nil {
		return HotVerdict{}, fmt.Errorf("decode %s: %w", PathHotReport, err)
	}
	return v, nil
}
