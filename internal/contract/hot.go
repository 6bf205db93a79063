package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/safefile"
)

// HotRecord records that a unit was hot-upgraded: the parent writes it
// once the new release serves, and when systemd restarts the unit, the
// exec shim runs this release instead of the unit's own.
type HotRecord struct {
	Unit         string   `json:"unit"`
	Release      string   `json:"release"`
	Argv         []string `json:"argv"` // the release's command, without the shim
	Dir          string   `json:"dir"`  // the release's directory, the working directory of Argv
	InvocationID string   `json:"invocation_id"`
}

// HotRecordPath is where the hot upgrade record of app's instance unit
// lives.
func HotRecordPath(p config.Paths, app, unit string) string {
	return filepath.Join(p.StateDir(app), "hot", unit+".json")
}

// WriteHotRecord records h for app's unit h.Unit, atomically.
func WriteHotRecord(p config.Paths, app string, h HotRecord) error {
	path := HotRecordPath(p, app, h.Unit)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write the hot upgrade record of %s: %w", h.Unit, err)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("write the hot upgrade record of %s: %w", h.Unit, err)
	}
	return safefile.Write(path, b, 0o644)
}

// RemoveHotRecord forgets a unit's hot upgrade: the parent starts the unit
// afresh with a release of its choosing. A record that is not there is no
// error.
func RemoveHotRecord(p config.Paths, app, unit string) error {
	err := os.Remove(HotRecordPath(p, app, unit))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ReadHotRecord returns the hot upgrade record of an instance unit of
// app; ok is false when the unit was not hot-upgraded since it was
// started.
func ReadHotRecord(p config.Paths, app, unit string) (h HotRecord, ok bool, err error) {
	path := HotRecordPath(p, app, unit)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return HotRecord{}, false, nil
	}
	if err != nil {
		return HotRecord{}, false, fmt.Errorf("read the hot upgrade record of %s: %w", unit, err)
	}
	if err := json.Unmarshal(b, &h); err != nil || len(h.Argv) == 0 {
		return HotRecord{}, false, fmt.Errorf("read the hot upgrade record of %s: malformed %s", unit, path)
	}
	return h, true, nil
}
