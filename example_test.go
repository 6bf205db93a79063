package beamdeploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/beamdeploy/beamdeploy"
)

// Listen returns the socket beamdeploy passed in when BEAM_DEPLOY is set, and
// a fresh one from net.Listen otherwise, so the app runs the same either way.
func ExampleListen() {
	ln, err := beamdeploy.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	fmt.Println("listening on", ln.Addr())
}

// A complete app: listen, report readiness, serve until SIGTERM, drain.
func ExampleServe() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	ln, err := beamdeploy.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello\n")
	})}
	// The socket is bound: connections wait in the backlog until Serve accepts.
	if err := beamdeploy.Ready(); err != nil {
		log.Fatal(err)
	}
	if err := beamdeploy.Serve(ctx, srv, ln, beamdeploy.ServeOptions{}); err != nil {
		log.Fatal(err) // the drain timed out, or serving failed
	}
	// Drained: every request was answered; exit 0.
}

// Instance tells a managed instance which unit, colour and release it is.
func ExampleInstance() {
	if info := beamdeploy.Instance(); info.Unit != "" {
		fmt.Printf("%s (%s) runs release %s\n", info.Unit, info.Color, info.Release)
	}
}

// NamedListeners tells the inherited sockets apart by FileDescriptorName=.
func ExampleNamedListeners() {
	ls, err := beamdeploy.NamedListeners()
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range ls {
		fmt.Println(l.Name, l.Addr())
	}
}

// A new instance takes over what the old one handed over once the old one
// has stopped.
func ExampleWaitCutover() {
	ctx := context.Background()
	_ = beamdeploy.Ready()
	p, err := beamdeploy.WaitCutover(ctx)
	if err != nil || p.Outgoing == "" {
		return // first instance, or not managed
	}
	state, err := beamdeploy.Get(ctx, "sessions")
	if errors.Is(err, beamdeploy.ErrHandoffNotFound) {
		return
	}
	fmt.Printf("took over %d bytes from %s\n", len(state), p.Outgoing)
}

// The old instance hands state over after draining, before it exits.
func ExamplePut() {
	ctx := context.Background()
	if err := beamdeploy.Put(ctx, "sessions", []byte(`{"open":3}`)); errors.Is(err, beamdeploy.ErrNotManaged) {
		fmt.Println("not running under beamdeploy")
	}
	// Output: not running under beamdeploy
}
