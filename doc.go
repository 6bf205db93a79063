// Package beamdeploy is the application SDK of beamdeploy: zero-downtime
// blue-green swaps of a service on one Linux host with systemd alone.
//
// systemd owns the listening socket (APP.socket). A small parent daemon
// (APP.service, "beamdeploy parent APP") holds the listener fds and runs the
// app as transient units APP@blue.service and APP@green.service. Each instance
// receives the same listening socket through the socket activation protocol
// (LISTEN_FDS, see sd_listen_fds(3)) and reports readiness with sd_notify(3)
// READY=1. During a swap both instances accept from the same socket; then the
// old one gets SIGTERM and drains without losing a request.
//
// An app using this package looks like:
//
//	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
//	defer stop()
//	ln, err := beamdeploy.Listen("tcp", "127.0.0.1:8080") // inherited when managed, net.Listen otherwise
//	...
//	_ = beamdeploy.Ready() // the socket is bound: the kernel queues connections until Serve accepts
//	err = beamdeploy.Serve(ctx, &http.Server{Handler: h}, ln, beamdeploy.ServeOptions{})
//
// The same binary runs standalone (on a laptop, in tests): when BEAM_DEPLOY is
// not set, [Listen] falls back to [net.Listen] and the notify functions are
// no-ops.
//
// # Units
//
// The socket is an ordinary socket unit; it never closes during swaps:
//
//	# /etc/systemd/system/hello.socket
//	[Socket]
//	ListenStream=127.0.0.1:8080
//	FileDescriptorName=http
//
//	[Install]
//	WantedBy=sockets.target
//
// beamdeploy starts the instances as transient units with Type=notify, so the
// app must send READY=1 (see [Ready]) once it can serve; until then the old
// instance keeps serving. Instances are customised with drop-ins in
// /etc/systemd/system/hello@.service.d/*.conf (a unit file named
// hello@.service must not exist):
//
//	# /etc/systemd/system/hello@.service.d/override.conf
//	[Service]
//	MemoryMax=512M
//	Environment=HELLO_GREETING=hi
//
// Without beamdeploy (no parent), the same app runs under plain socket
// activation; BEAM_DEPLOY=1 makes [Listen] take the socket from systemd:
//
//	# /etc/systemd/system/hello.service
//	[Service]
//	Type=notify
//	Environment=BEAM_DEPLOY=1
//	ExecStart=/usr/local/bin/hello
//	TimeoutStopSec=30
//
// [DefaultDrainTimeout] (20 s) is shorter than systemd's default stop timeout
// (30 s), so [Serve] returns before systemd escalates to SIGKILL; with another
// TimeoutStopSec, tell [Serve] with Environment=BEAMDEPLOY_DRAIN_TIMEOUT=
// (the same value, see [ServeOptions.DrainTimeout]).
//
// # Environment
//
// The contract between beamdeploy and an instance is the environment:
//
//   - BEAM_DEPLOY: "1", "true", "yes" or "on" (any case) when the app runs
//     managed; the parent sets BEAM_DEPLOY=1 for its instances. See [Enabled].
//   - LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES: the inherited listeners, fds
//     starting at 3, as in sd_listen_fds(3); see [Listeners].
//   - NOTIFY_SOCKET: where READY=1, STOPPING=1 and STATUS= go; see [Ready].
//   - BEAMDEPLOY_APP, BEAMDEPLOY_UNIT, BEAMDEPLOY_COLOR, BEAMDEPLOY_RELEASE:
//     set by the parent for each instance; see [Instance].
//   - BEAMDEPLOY_DRAIN_TIMEOUT: the instance's stop timeout (drain_timeout),
//     e.g. "30s"; [Serve] ends its drain before it; see [EnvDrainTimeout].
//
// The SDK is a convenience, never a requirement: any program that takes its
// listeners from LISTEN_FDS, sends READY=1 when it can serve and drains on
// SIGTERM works unmodified.
//
// Man pages: https://www.freedesktop.org/software/systemd/man/latest/sd_listen_fds.html,
// https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html,
// https://www.freedesktop.org/software/systemd/man/latest/systemd.socket.html.
package beamdeploy
