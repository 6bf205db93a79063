// Package journallog is a log/slog handler that writes to the systemd
// journal's native protocol, turning attributes into journal fields
// (swap=ID becomes BEAMDEPLOY_SWAP=ID), so that
// `journalctl BEAMDEPLOY_SWAP=ID` finds every line of one swap.
package journallog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// FieldPrefix starts every field the handler adds.
const FieldPrefix = "BEAMDEPLOY_"

// Handler sends records to journald. It is safe for concurrent use.
type Handler struct {
	level slog.Leveler
	attrs []slog.Attr
	group string
}

// Available reports whether the journal's native socket can be used.
func Available() bool { return journal.Enabled() }

// New returns a handler logging at level and above.
func New(level slog.Leveler) *Handler { return &Handler{level: level} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler: the message keeps the attributes as
// key=value text too, for plain `journalctl -u`.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{}
	var text strings.Builder
	text.WriteString(r.Message)
	add := func(a slog.Attr) {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		val := a.Value.Resolve().String()
		fmt.Fprintf(&text, " %s=%q", key, val)
		vars[field(key)] = val
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	return journal.Send(text.String(), priority(r.Level), vars)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// field turns an attribute key into a journal field name: upper case
// letters, digits and underscores, prefixed.
func field(key string) string {
	b := []byte(strings.ToUpper(key))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return FieldPrefix + string(b)
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
