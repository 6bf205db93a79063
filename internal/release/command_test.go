package release

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nativeELF returns a small ELF for this host (/bin/true).
func nativeELF(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	require.NoError(t, err)
	return b
}

// foreignELF returns an ELF that claims another architecture.
func foreignELF(t *testing.T) []byte {
	t.Helper()
	b := append([]byte(nil), nativeELF(t)...)
	other := elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		other = elf.EM_X86_64
	}
	binary.LittleEndian.PutUint16(b[18:20], uint16(other)) // e_machine
	return b
}

func TestStageChecksCommand(t *testing.T) {
	native, foreign := string(nativeELF(t)), string(foreignELF(t))
	tests := []struct {
		name    string
		ents    []ent
		command string
		wantErr string // "" = accepted
	}{
		{"native ELF", []ent{{name: "bin/app", body: native, mode: 0o755}}, "bin/app", ""},
		{"script with existing interpreter", []ent{{name: "bin/app", body: "#!/bin/sh\nexec true\n", mode: 0o755}}, "bin/app", ""},
		{"wrong-architecture binary", []ent{{name: "bin/app", body: foreign, mode: 0o755}}, "bin/app", "ELF binary for EM_"},
		{"script with missing interpreter", []ent{{name: "bin/app", body: "#!/opt/nope/python9\n", mode: 0o755}}, "bin/app", "interpreter /opt/nope/python9"},
		{"text file", []ent{{name: "bin/app", body: "just text\n", mode: 0o755}}, "bin/app", "found text/plain"},
		{"not executable", []ent{{name: "bin/app", body: native, mode: 0o644}}, "bin/app", "not an executable file"},
		{"missing", []ent{{name: "bin/other", body: native, mode: 0o755}}, "bin/app", "not in the release"},
		{"symlink out of the release", []ent{{name: "bin/app", typ: '2', link: "../../../../bin/sh"}}, "bin/app", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := newSandbox(t)
			rel, err := sb.stage(t, "app-1.0.0.tar.gz", tgz(t, tt.ents...), StageOptions{Command: tt.command})
			if tt.wantErr == "" && tt.name != "symlink out of the release" {
				require.NoError(t, err)
				assert.Equal(t, "1.0.0", rel.Version)
				return
			}
			require.ErrorIs(t, err, ErrInvalidRelease)
			assert.Contains(t, err.Error(), tt.wantErr)
			sb.requireOnly(t) // nothing staged, nothing left behind
		})
	}
}

func TestStageManifest(t *testing.T) {
	native := string(nativeELF(t))
	sb := newSandbox(t)
	rel, err := sb.stage(t, "app-2.0.0.tar.gz", tgz(t,
		ent{name: "beamdeploy.json", body: `{"version":"2.0.0","command":["bin/other","-v"],"compat":"v2","hot":"in_place"}`},
		ent{name: "bin/other", body: native, mode: 0o755}), StageOptions{Command: "bin/app"})
	require.NoError(t, err, "the manifest's command is checked, not the config's")
	assert.Equal(t, []string{"bin/other", "-v"}, rel.Command)
	assert.Equal(t, "v2", rel.Compat)
	assert.Equal(t, "in_place", rel.HotMode())
	got, err := sb.store.Get("2.0.0")
	require.NoError(t, err)
	assert.Equal(t, rel.Command, got.Command, "kept in the release metadata")
	assert.Equal(t, "in_place", got.Hot, "kept in the release metadata")
	assert.Equal(t, "successor", Release{}.HotMode(), "the default mode")

	for name, manifest := range map[string]string{
		"version mismatch": `{"version":"9.9.9"}`,
		"absolute command": `{"command":["/bin/sh"]}`,
		"escaping command": `{"command":["../x"]}`,
		"unknown field":    `{"versoin":"2.0.0"}`,
		"unknown hot mode": `{"compat":"v2","hot":"inplace"}`,
		"not json":         `version: 2`,
	} {
		t.Run(name, func(t *testing.T) {
			sb := newSandbox(t)
			_, err := sb.stage(t, "app-2.0.0.tar.gz", tgz(t, ent{name: "beamdeploy.json", body: manifest},
				ent{name: "bin/other", body: native, mode: 0o755}), StageOptions{})
			require.ErrorIs(t, err, ErrInvalidRelease)
			sb.requireOnly(t)
		})
	}
}
