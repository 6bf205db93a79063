package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// ManifestFile is the optional manifest at a release root. It may set:
//
//	{
//	  "version": "1.2.3",             // must equal the tarball name's version
//	  "command": ["bin/app", "-flag"], // the app's command for this release,
//	                                   // relative to the release root;
//	                                   // overrides the app config's exec
//	  "compat": "v2",                  // compatibility key (hot upgrades)
//	  "hot": "in_place"                // how it is hot-upgraded: "successor"
//	                                   // (the default) or "in_place"; see
//	                                   // docs/protocol.md
//	}
const ManifestFile = "beamdeploy.json"

// maxManifest bounds the manifest's size.
const maxManifest = 64 << 10

// Manifest is the content of ManifestFile; every field is optional.
type Manifest struct {
	Version string   `json:"version,omitempty"`
	Command []string `json:"command,omitempty"`
	Compat  string   `json:"compat,omitempty"`
	Hot     string   `json:"hot,omitempty"`
}

// readManifest reads and validates the manifest of the tree at dir for a
// release named version; a missing manifest is the zero Manifest.
func readManifest(dir, version string) (Manifest, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("open release root: %w", err)
	}
	defer root.Close()
	f, err := root.Open(ManifestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, nil
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %w", ErrInvalidRelease, ManifestFile, err)
	}
	defer f.Close()
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(f, maxManifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %w", ErrInvalidRelease, ManifestFile, err)
	}
	return m, m.validate(version)
}

func (m Manifest) validate(version string) error {
	if m.Version != "" && m.Version != version {
		return fmt.Errorf("%w: %s says version %q but the tarball is named for %q", ErrInvalidRelease, ManifestFile, m.Version, version)
	}
	switch m.Hot {
	case "", control.HotSuccessor, control.HotInPlace:
	default:
		return fmt.Errorf("%w: %s: hot is %q; use %q (the running process starts the new release) or %q (it loads the new code itself)",
			ErrInvalidRelease, ManifestFile, m.Hot, control.HotSuccessor, control.HotInPlace)
	}
	if len(m.Command) > 0 {
		c := m.Command[0]
		if c == "" || path.IsAbs(c) || strings.HasPrefix(path.Clean(c), "..") {
			return fmt.Errorf("%w: %s: command %q must be a path inside the release", ErrInvalidRelease, ManifestFile, c)
		}
	}
	return nil
}
