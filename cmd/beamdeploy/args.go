package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags stand anywhere among a command's arguments
// (`beamdeploy upgrade hello --force x.tar.gz`, `beamdeploy status hello
// --json`). urfave/cli v2 has no option for that: it stops parsing flags
// at the first positional argument and takes global flags only before the
// command. So the arguments are rewritten to: program, global flags,
// command, the command's flags, its positional arguments, then "--" and
// everything after it untouched. A flag's value is kept with its flag
// (the flag definitions say which flags take one); "-" is a positional
// argument (stdin); a flag neither the command nor the app defines is left
// for urfave/cli to report as a usage error, and so is a flag that lacks
// its value (the positional arguments are dropped then, so that none is
// taken for the value). --help or -h anywhere asks for the command's help.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	i := 1 + flagsSpan(app.Flags, args[1:])
	out := slices.Clone(args[:i]) // program, global flags
	if i >= len(args) || args[i] == "--" {
		return append(out, args[i:]...)
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return append(out, args[i:]...) // the app reports the unknown command
	}
	name := args[i]
	var flags, positional []string
	for i++; i < len(args) && args[i] != "--"; {
		a := args[i]
		switch {
		case !isFlag(a):
			positional = append(positional, a)
			i++
			continue
		case a == "--help" || a == "-h":
			return append(out, name, "--help")
		}
		defs, global := cmd.Flags, false
		if lookupFlag(defs, a) == nil && lookupFlag(app.Flags, a) != nil {
			defs, global = app.Flags, true // a global flag after the command: moved before it
		}
		n := flagLen(defs, args, i)
		switch {
		case n == 0:
			return append(append(out, name), append(flags, a)...)
		case global:
			out = append(out, args[i:i+n]...)
		default:
			flags = append(flags, args[i:i+n]...)
		}
		i += n
	}
	out = append(out, name)
	out = append(out, flags...)
	out = append(out, positional...)
	return append(out, args[i:]...)
}

// flagsSpan is how many of args, from the first, are flags of defs with
// their values.
func flagsSpan(defs []cli.Flag, args []string) int {
	i := 0
	for i < len(args) && isFlag(args[i]) {
		n := flagLen(defs, args, i)
		if n == 0 {
			return len(args) // a flag without its value: for the parser to refuse
		}
		i += n
	}
	return i
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
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// flagLen is how many arguments the flag at args[i] spans: 2 when it takes
// a value given as the next argument, else 1; 0 when it takes one and is
// the last argument.
func flagLen(flags []cli.Flag, args []string, i int) int {
	tv, ok := lookupFlag(flags, args[i]).(interface{ TakesValue() bool })
	switch {
	case !ok || !tv.TakesValue() || strings.Contains(args[i], "="):
		return 1
	case i+1 >= len(args):
		return 0
	}
	return 2
}
