package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/beamdeploy/beamdeploy/internal/config"
)

// The man pages carry every command with its description and examples,
// the sections an operator looks for, and every field of the config file.
func TestManPages(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1764460800") // 2025-11-30
	app := newApp(&globals{})
	page := manPage(app)
	has := func(s string, msg ...any) {
		t.Helper()
		assert.True(t, strings.Contains(page, s), append([]any{"man page lacks %q", s}, msg...)...)
	}
	has(`.TH BEAMDEPLOY 1 "2025-11-30" "beamdeploy ` + roff(version) + `"`)
	for _, s := range []string{".SH COMMANDS", ".SH ENVIRONMENT", ".SH FILES", ".SH EXIT STATUS", ".SH SEE ALSO", "BEAMDEPLOY_SWAP_TIMEOUT"} {
		has(s)
	}
	for _, c := range app.Commands {
		if c.Hidden || c.Name == "help" {
			continue
		}
		has(".SS \"" + roff(c.UsageText))
		text, examples := splitDescription(c.Description)
		if text != "" {
			first := strings.SplitN(text, "\n", 2)[0]
			has(roff(strings.TrimSpace(first)))
		}
		for _, ex := range examples {
			has(roff(strings.TrimSpace(ex)))
		}
	}
	for _, e := range manExitStatus {
		assert.Contains(t, exitStatusHelp, " "+e[0]+" ", "exit status %s is in --help too", e[0])
	}

	documented := map[string]bool{}
	for _, r := range configReference {
		documented[r[0]] = true
	}
	var fields []string
	var walk func(prefix string, ty reflect.Type)
	walk = func(prefix string, ty reflect.Type) {
		for i := range ty.NumField() {
			name, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ",")
			if ty.Field(i).Type.Kind() == reflect.Struct && name == "hooks" {
				walk(prefix+name+".", ty.Field(i).Type)
				continue
			}
			fields = append(fields, prefix+name)
		}
	}
	walk("", reflect.TypeFor[config.Config]())
	for _, f := range fields {
		assert.True(t, documented[f], "beamdeploy.json(5) documents %q", f)
	}
	assert.Len(t, configReference, len(fields), "beamdeploy.json(5) documents no field the config does not have")
	assert.Contains(t, configManPage(), ".TH BEAMDEPLOY.JSON 5")
}
