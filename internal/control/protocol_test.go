package control

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
)

// protocolDoc is the app protocol this package (and the SDK through it)
// speaks.
const protocolDoc = "../../docs/protocol.md"

// wireConstants returns the string constants of this package whose names
// start with prefix (Path..., Code...), read from its source so that a
// constant added later is checked too.
func wireConstants(t *testing.T, prefix string) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					out[name.Name] = v
				}
			}
			return true
		})
	}
	require.NotEmpty(t, out, "no %s constants found", prefix)
	return out
}

// TestProtocolDocumentsTheClient: every path and error code that the CLI
// and the SDK use is in docs/protocol.md, and every example there uses
// known paths and codes only.
func TestProtocolDocumentsTheClient(t *testing.T) {
	doc, err := os.ReadFile(protocolDoc)
	require.NoError(t, err)
	paths, codes := wireConstants(t, "Path"), wireConstants(t, "Code")
	for name, p := range paths {
		re := regexp.MustCompile(regexp.QuoteMeta(p) + "[`?/ ]")
		assert.True(t, re.Match(doc), "%s (%s) is not documented in %s", name, p, protocolDoc)
	}
	known := map[string]bool{}
	for name, c := range codes {
		assert.True(t, strings.Contains(string(doc), "| `"+c+"` |"), "%s (%s) is not in the error table of %s", name, c, protocolDoc)
		known[c] = true
	}

	examples, err := beamtest.ProtocolExamples(protocolDoc)
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	for _, e := range examples {
		path, _, _ := strings.Cut(e.Path, "?")
		if e.Status == 404 && !strings.HasPrefix(e.Expected, "{") {
			continue // the example of an unknown path
		}
		ok := false
		for _, p := range paths {
			ok = ok || path == p || strings.HasPrefix(path, p+"/")
		}
		assert.True(t, ok, "%s: path %s is none of the client's", e.Request(), path)
		var body struct {
			Code string `json:"code"`
		}
		if strings.HasPrefix(e.Expected, "{") {
			require.NoError(t, json.Unmarshal([]byte(e.Expected), &body), e.Request())
			assert.True(t, body.Code == "" || known[body.Code], "%s: code %q is not one of the client's", e.Request(), body.Code)
		}
	}
}

// TestProtocolExamplesDecode: every JSON answer documented in
// docs/protocol.md (the checked examples and the illustrations in json
// blocks) decodes into the type this package reads it with, without a
// field the type does not know.
func TestProtocolExamplesDecode(t *testing.T) {
	examples, err := beamtest.ProtocolExamples(protocolDoc)
	require.NoError(t, err)
	var answers []string
	for _, e := range examples {
		if strings.HasPrefix(e.Expected, "{") {
			answers = append(answers, e.Expected)
		}
	}
	doc, err := os.ReadFile(protocolDoc)
	require.NoError(t, err)
	for _, block := range strings.Split(string(doc), "```json\n")[1:] {
		answers = append(answers, block[:strings.Index(block, "```")])
	}
	types := map[string]func() any{
		TypeStatus: func() any { return &Status{} }, TypeReleases: func() any { return &Releases{} },
		TypeHandoff: func() any { return &Handoff{} }, TypePeers: func() any { return &Peers{} },
		TypeError: func() any { return &Error{} }, TypeHotOrder: func() any { return &HotOrder{} },
		"": func() any { return &HotVerdict{} }, // the verdict has no message_type
	}
	require.GreaterOrEqual(t, len(answers), 10)
	for _, a := range answers {
		var m struct {
			MessageType string `json:"message_type"`
		}
		require.NoError(t, json.Unmarshal([]byte(a), &m), a)
		mk, ok := types[m.MessageType]
		if !assert.True(t, ok, "message type %q has no client type: %s", m.MessageType, a) {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(a)))
		dec.DisallowUnknownFields()
		assert.NoError(t, dec.Decode(mk()), "%s", a)
	}
}
