package swap_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPureLogic keeps package swap free of systemd, D-Bus and syscalls so
// that it stays testable anywhere (the style guide's depguard rule).
func TestPureLogic(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	banned := []string{"github.com/godbus/", "github.com/coreos/go-systemd", "golang.org/x/sys", "syscall", "os/exec", "net"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, b := range banned {
				assert.False(t, path == b || strings.HasPrefix(path, b+"/") || strings.HasPrefix(path, b) && strings.HasSuffix(b, "/"),
					"%s imports %s", f, path)
			}
		}
	}
}
