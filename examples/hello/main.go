// Command hello is a small HTTP server that uses the beamdeploy SDK; it is the
// example app and the blue/green instance of end-to-end tests.
//
// Every request is answered with "hello from <version>\n" and the headers
// X-Release (the version), X-Instance (the beamdeploy unit, else the host name),
// X-Received (the length of the request body, which is read fully) and
// X-Requests (requests served so far, carried across swaps through the
// handoff store: see counter.go). The
// query ?sleep=2s makes a request take that long (at most 30 s).
//
//	go build -ldflags "-X main.version=1.2.3" ./examples/hello
//	hello -listen 127.0.0.1:8080   # or HELLO_LISTEN=127.0.0.1:8080
//
// On SIGTERM or SIGINT it drains with beamdeploy.Serve and exits 0; so it
// does once a hot upgrade (beamdeploy hot-upgrade) has handed its unit over
// to a new binary, which it starts itself (beamdeploy.HotUpgrades).
//
// Standalone, HELLO_REUSEPORT=1 binds with SO_REUSEPORT, so that a second
// copy can bind the same port (the overlap scheme the benchmark compares
// beamdeploy with).
//
// The end-to-end tests build hello with -tags faults, which adds the
// knobs of faults.go (crash at start, never READY=1, ignore SIGTERM, ...);
// the plain build has none (nofaults.go): it is the app to copy.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/beamdeploy/beamdeploy"
)

// version is set at build time with -ldflags "-X main.version=1.2.3".
var version = "dev"

// maxSleep caps ?sleep=.
const maxSleep = 30 * time.Second

func main() {
	os.Exit(run())
}

func run() int {
	addr := flag.String("listen", envOr("HELLO_LISTEN", "127.0.0.1:8080"), "address to listen on (env HELLO_LISTEN)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if code := crashAtStart(); code != 0 {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	ctx = hotUpgrades(ctx) // done once a hot upgrade took over: drain like on SIGTERM
	ln, err := listen(*addr)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	unit := instanceName()
	log.Info("hello starting", "version", version, "unit", unit, "addr", ln.Addr().String())
	var count counter
	srv := &http.Server{Handler: handler(unit, &count), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- beamdeploy.Serve(ctx, srv, ln, beamdeploy.ServeOptions{}) }()
	if err := ready(ctx); err != nil {
		log.Error("ready", "err", err)
	}
	go count.inherit(ctx, log)
	failed := failAfter(stop, log)
	if err := <-served; err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	if failed.Load() {
		return 4
	}
	count.handOver(log)
	return 0
}

func handler(unit string, count *counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := sleep(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Release", version)
		w.Header().Set("X-Instance", unit)
		w.Header().Set("X-Received", strconv.FormatInt(n, 10))
		w.Header().Set("X-Requests", strconv.FormatInt(count.n.Add(1), 10))
		_, _ = fmt.Fprintf(w, "hello from %s\n", version) // the client may be gone
	})
}

// sleep waits for ?sleep=, capped at maxSleep, or until the client leaves.
func sleep(r *http.Request) error {
	v := r.URL.Query().Get("sleep")
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("parse sleep: %w", err)
	}
	t := time.NewTimer(min(d, maxSleep))
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
	return nil
}

// instanceName is the beamdeploy unit, else the host name, else "standalone".
func instanceName() string {
	if u := beamdeploy.Instance().Unit; u != "" {
		return u
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "standalone"
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
