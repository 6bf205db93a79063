package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags follow positional arguments
// (`beamdeploy init hello --listen :8080`): urfave/cli v2 stops parsing
// flags at the first positional argument, so the positional arguments
// between the command name and its first flag are moved after the flags
// (but before a "--" terminator).
func reorderArgs(app *cli.App, args []string) []string {
	cmd := slices.IndexFunc(args, func(a string) bool { return app.Command(a) != nil })
	if cmd < 0 {
		return args
	}
	rest := args[cmd+1:]
	end := slices.Index(rest, "--")
	if end < 0 {
		end = len(rest)
	}
	firstFlag := slices.IndexFunc(rest[:end], func(a string) bool { return strings.HasPrefix(a, "-") })
	if firstFlag <= 0 {
		return args
	}
	out := slices.Clone(args[:cmd+1])
	out = append(out, rest[firstFlag:end]...)
	out = append(out, rest[:firstFlag]...)
	return append(out, rest[end:]...)
}
