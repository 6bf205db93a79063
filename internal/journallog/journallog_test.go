package journallog

import (
	"log/slog"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/stretchr/testify/assert"
)

func TestField(t *testing.T) {
	assert.Equal(t, "BEAMDEPLOY_SWAP", field("swap"))
	assert.Equal(t, "BEAMDEPLOY_G_OLD_UNIT", field("g.old-unit"))
}

func TestPriority(t *testing.T) {
	assert.Equal(t, journal.PriErr, priority(slog.LevelError))
	assert.Equal(t, journal.PriWarning, priority(slog.LevelWarn))
	assert.Equal(t, journal.PriInfo, priority(slog.LevelInfo))
	assert.Equal(t, journal.PriDebug, priority(slog.LevelDebug))
}
