package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
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
		Action: func(c *cli.Context) error {
			app, err := appArg(c)
			if err != nil {
				return err
			}
			ctx, cancel := contextWithTimeout(c, c.Duration("timeout"))
			defer cancel()
			cl, err := g.client(app)
			if err != nil {
				return err
			}
			defer cl.Close()
			args := c.Args().Tail()
			want := map[string]int{"put": 3, "get": 2, "list": 1, "delete": 2}
			if len(args) == 0 || want[args[0]] != len(args) {
				return usageErrorf("usage: %s", c.Command.UsageText)
			}
			switch args[0] {
			case "put":
				return handoffPut(ctx, cl, args[1], args[2])
			case "get":
				return g.handoffGet(ctx, cl, args[1])
			case "delete":
				return cl.HandoffDelete(ctx, args[1])
			}
			return g.handoffList(ctx, cl)
		},
	}
}

func handoffPut(ctx context.Context, cl *control.Client, key, value string) error {
	v := []byte(value)
	if value == "-" {
		var err error
		if v, err = io.ReadAll(os.Stdin); err != nil {
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
	if g.json {
		return json.NewEncoder(g.stdout).Encode(map[string]any{"message_type": "handoff_value", "key": key, "value": v})
	}
	_, err = g.stdout.Write(v)
	return err
}

func (g *globals) handoffList(ctx context.Context, cl *control.Client) error {
	entries, err := cl.HandoffList(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return json.NewEncoder(g.stdout).Encode(control.Handoff{MessageType: control.TypeHandoff, Entries: entries})
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := entries[k]
		if utf8.Valid(v) {
			fmt.Fprintf(g.stdout, "%s\t%s\n", k, strconv.Quote(string(v)))
		} else {
			fmt.Fprintf(g.stdout, "%s\t(%d bytes of binary data)\n", k, len(v))
		}
	}
	return nil
}
