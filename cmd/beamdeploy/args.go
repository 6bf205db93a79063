package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags stand anywhere among a command's arguments
// (`beamdeploy upgrade hello --force x.tar.gz`, `beamdeploy status hello
// --json`). urfave/cli v2 stops parsing flags at the first positional
// argument and takes global flags only before the command, so the
// arguments are rewritten to: program, global flags, command, the
// command's flags, its positional arguments, then "--" and everything
// after it untouched. A flag's value is kept with its flag (the command's
// flag definitions say which flags take one); "-" is a positional argument
// (stdin); a flag neither the command nor the app defines is left for
// urfave/cli to report as a usage error.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// Global flags before the command.
	for i < len(args) && isFlag(args[i]) {
		n := flagLen(app.Flags, args, i)
		out = append(out, args[i:i+n]...)
		i += n
	}
	if i >= len(args) || args[i] == "--" {
		return append(out, args[i:]...)
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return append(out, args[i:]...) // the app reports the unknown command
	}
	name := args[i]
	var flags, positional []string
	i++
	for i < len(args) && args[i] != "--" {
		a := args[i]
		switch {
		case !isFlag(a):
			positional = append(positional, a)
			i++
		case lookupFlag(cmd.Flags, a) == nil && lookupFlag(app.Flags, a) != nil:
			n := flagLen(app.Flags, args, i)
			out = append(out, args[i:i+n]...) // a global flag after the command
			i += n
		default:
			n := flagLen(cmd.Flags, args, i)
			flags = append(flags, args[i:i+n]...)
			i += n
		}
	}
	out = append(out, name)
	out = append(out, flags...)
	out = append(out, positional...)
	return append(out, args[i:]...)
}

// isFlag reports whether a looks like a flag; "-" alone is an argument.
func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// flagName strips the dashes and any "=value" from a flag argument.
func flagName(a string) string {
	name := strings.TrimLeft(a, "-")
	name, _, _ = strings.Cut(name, "=")
	return name
}

// lookupFlag finds the definition of flag argument a among flags.
func lookupFlag(flags []cli.Flag, a string) cli.Flag {
	name := flagName(a)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// flagLen is how many arguments the flag at args[i] spans: 2 when it takes
// a value given as the next argument, else 1.
func flagLen(flags []cli.Flag, args []string, i int) int {
	f := lookupFlag(flags, args[i])
	tv, ok := f.(interface{ TakesValue() bool })
	if !ok || !tv.TakesValue() || strings.Contains(args[i], "=") || i+1 >= len(args) {
		return 1
	}
	return 2
}
