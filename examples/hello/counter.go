package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/beamdeploy/beamdeploy"
)

// counterKey is the handoff key that carries hello's request count from an
// instance to its successor.
const counterKey = "hello.requests"

// counter counts requests across swaps: the old instance writes its total
// to the handoff store once it drained, the new one adds it once the old
// one stopped (beamdeploy.WaitCutover).
type counter struct{ n atomic.Int64 }

// inherit waits for the cutover and takes over what the previous instance
// handed over. It deletes the key so that a value is never counted twice.
func (c *counter) inherit(ctx context.Context, log *slog.Logger) {
	if !beamdeploy.Enabled() {
		return
	}
	p, err := beamdeploy.WaitCutover(ctx)
	if err != nil {
		log.Warn("no cutover notice; not inheriting the request count", "err", err)
		return
	}
	v, err := beamdeploy.Get(ctx, counterKey)
	if errors.Is(err, beamdeploy.ErrHandoffNotFound) {
		return
	}
	if err != nil {
		log.Warn("read handed-over request count", "err", err)
		return
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		log.Warn("handed-over request count is not a number", "value", string(v))
		return
	}
	c.n.Add(n)
	if err := beamdeploy.Delete(ctx, counterKey); err != nil {
		log.Warn("delete handed-over request count", "err", err)
	}
	log.Info("inherited request count", "from", p.Outgoing, "count", n)
}

// handOver writes the total for the successor; called after draining.
func (c *counter) handOver(log *slog.Logger) {
	if !beamdeploy.Enabled() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := c.n.Load()
	if err := beamdeploy.Put(ctx, counterKey, []byte(strconv.FormatInt(n, 10))); err != nil {
		log.Warn("hand over request count", "err", err)
		return
	}
	log.Info("handed over request count", "count", n)
}
