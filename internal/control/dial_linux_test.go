package control_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// A client whose connect finds the socket's backlog full retries until
// the parent accepts again.
func TestClientRetriesFullBacklog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	defer ln.Close()
	rc, err := ln.SyscallConn()
	require.NoError(t, err)
	require.NoError(t, rc.Control(func(fd uintptr) { require.NoError(t, syscall.Listen(int(fd), 1)) }))

	// Fill the backlog: nobody accepts yet.
	var queued []net.Conn
	defer func() {
		for _, c := range queued {
			_ = c.Close() // test connections
		}
	}()
	for {
		c, err := net.Dial("unix", path)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		require.NoError(t, err)
		queued = append(queued, c)
		require.Less(t, len(queued), 100, "the backlog never filled")
	}

	c := control.NewClient("hello", path)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Status(t.Context())
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("status returned while the backlog was full: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(control.Status{MessageType: control.TypeStatus, App: "hello"})
	})}
	go func() { _ = srv.Serve(ln) }() // ends at Close
	defer srv.Close()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("status did not get through once the parent accepted")
	}
}

// The parent ends an idle hot-upgrade poll with 204 No Content; HotWait
// polls again until an order comes.
func TestHotWaitPollsAgainAfterNoContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	var polls atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if polls.Add(1) < 3 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_ = json.NewEncoder(w).Encode(control.HotOrder{MessageType: control.TypeHotOrder, ID: "h1"})
	})}
	go func() { _ = srv.Serve(ln) }() // ends at Close
	defer srv.Close()
	c := control.NewClient("hello", path)
	defer c.Close()
	o, err := c.HotWait(t.Context(), "hello@blue.service")
	require.NoError(t, err)
	assert.Equal(t, "h1", o.ID)
	assert.Equal(t, int32(3), polls.Load())
}
