package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReorderArgs(t *testing.T) {
	app := newApp(&globals{})
	tests := []struct{ in, want []string }{
		{[]string{"bd", "init", "hello", "--listen", "a", "--exec", "b c"}, []string{"bd", "init", "--listen", "a", "--exec", "b c", "hello"}},
		{[]string{"bd", "--json", "status", "hello"}, []string{"bd", "--json", "status", "hello"}},
		{[]string{"bd", "upgrade", "hello", "x.tar.gz", "--force"}, []string{"bd", "upgrade", "--force", "hello", "x.tar.gz"}},
		{[]string{"bd", "exec", "hello", "--", "bin/x", "--flag"}, []string{"bd", "exec", "hello", "--", "bin/x", "--flag"}},
		{[]string{"bd", "exec", "hello", "--x", "--", "bin/x"}, []string{"bd", "exec", "--x", "hello", "--", "bin/x"}},
		{[]string{"bd"}, []string{"bd"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, reorderArgs(app, tt.in))
	}
}

// Every command's --help has examples and the exit status section.
func TestHelpHasExamplesAndExitStatus(t *testing.T) {
	for _, c := range newApp(&globals{}).Commands {
		if c.Hidden || c.Name == "help" {
			continue
		}
		assert.Contains(t, c.Description, "EXAMPLES:", c.Name)
		assert.Contains(t, c.Description, "EXIT STATUS:", c.Name)
	}
}
