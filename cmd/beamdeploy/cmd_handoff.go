package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

func handoffCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "handoff",
		Usage:     "read and write APP's handoff store (kept by the parent, durable across swaps and restarts)",
		UsageText: "beamdeploy handoff APP put KEY VALUE|-  |  get KEY  |  list [--json]  |  delete KEY",
		Description: "The handoff store carries small state from an old instance to its successor.\n" +
			"VALUE - reads the value from stdin. get prints the raw value. With --json, list\n" +
			"prints {\"message_type\":\"handoff\",\"entries\":{KEY: base64 VALUE}}.\n\n" +
			"EXAMPLES:\n   beamdeploy handoff hello put schema-version 7\n   beamdeploy handoff hello get schema-version\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			callTimeoutFlag(10 * time.Second),
		},
		Action: action(g, parseHandoff, runHandoff),
	}
}

type handoffOptions struct {
	appOptions
	op    string // put, get, list or delete
	key   string
	value string // put's VALUE; "-": read it from stdin
}

// handoffArgs is how many arguments each operation takes after APP.
var handoffArgs = map[string]int{"put": 3, "get": 2, "list": 1, "delete": 2}

func parseHandoff(c *cli.Context) (handoffOptions, error) {
	a, err := parseApp(c, 3)
	if err != nil {
		return handoffOptions{}, err
	}
	args := c.Args().Tail()
	if len(args) == 0 || handoffArgs[args[0]] != len(args) {
		return handoffOptions{}, usageErrorf("usage: %s", c.Command.UsageText)
	}
	o := handoffOptions{appOptions: a, op: args[0]}
	if len(args) > 1 {
		o.key = args[1]
	}
	if len(args) > 2 {
		o.value = args[2]
	}
	return o, nil
}

func runHandoff(ctx context.Context, g *globals, o handoffOptions) error {
	return g.call(ctx, o.appOptions, func(ctx context.Context, cl *control.Client) error {
		switch o.op {
		case "put":
			return g.handoffPut(ctx, cl, o.key, o.value)
		case "get":
			return g.handoffGet(ctx, cl, o.key)
		case "delete":
			return cl.HandoffDelete(ctx, o.key)
		}
		return g.handoffList(ctx, cl)
	})
}

func (g *globals) handoffPut(ctx context.Context, cl *control.Client, key, value string) error {
	v := []byte(value)
	if value == "-" {
		var err error
		if v, err = io.ReadAll(g.stdin); err != nil {
			return fmt.Errorf("read value from stdin: %w", err)
		}
	}
	return cl.HandoffPut(ctx, key, v)
}

func (g *globals) handoffGet(ctx context.Context, cl *control.Client, key string) error {
	v, err := cl.HandoffGet(ctx, key)
	if err != nil {
		return err
	}
	return g.print(map[string]any{"message_type": "handoff_value", "key": key, "value": v}, func(w io.Writer) error {
		_, err := w.Write(v)
		return err
	})
}

func (g *globals) handoffList(ctx context.Context, cl *control.Client) error {
	entries, err := cl.HandoffList(ctx)
	if err != nil {
		return err
	}
	return g.print(control.Handoff{MessageType: control.TypeHandoff, Entries: entries}, func(w io.Writer) error {
		keys := make([]string, 0, len(entries))
		for k := range entries {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := entries[k]
			if utf8.Valid(v) {
				fmt.Fprintf(w, "%s\t%s\n", k, strconv.Quote(string(v)))
			} else {
				fmt.Fprintf(w, "%s\t(%d bytes of binary data)\n", k, len(v))
			}
		}
		return nil
	})
}
