#!/usr/bin/python3
"""A beamdeploy app written against docs/protocol.md only (python3's
standard library, no beamdeploy code; only modules of Debian's
python3-minimal): HTTP on the listening sockets at
fd 3 on, READY=1 on NOTIFY_SOCKET, drain on SIGTERM, and hot upgrades in
both modes. Its "code" is the reply text in reply.txt of its release
directory: GET / answers it in the X-Release header and the body.

A release directory holds this file as bin/app, reply.txt and a
beamdeploy.json with "compat" and "hot" ("successor" or "in_place").
An in-place upgrade to a release without reply.txt fails to load, with
the error as the message the app reports; one whose reply.txt says "hang"
never ends loading.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

stopping = threading.Event()  # stop accepting, drain, exit 0
lock = threading.Lock()  # guards code
code = {"release": os.environ.get("BEAMDEPLOY_RELEASE", ""), "reply": ""}


def log(*args):
    print("hotpy[%d]:" % os.getpid(), *args, file=sys.stderr, flush=True)


def notify(*lines):
    """Send KEY=value lines in one datagram to NOTIFY_SOCKET (sd_notify(3))."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall("\n".join(lines).encode())


def call(method, path, body=None):
    """One HTTP/1.0 request to the parent on $BEAMDEPLOY_SOCKET (one
    connection each: no chunked answers, the answer ends at EOF); returns
    (status, decoded JSON or None)."""
    data = b"" if body is None else json.dumps(body).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(os.environ["BEAMDEPLOY_SOCKET"])
        s.sendall(("%s %s HTTP/1.0\r\nHost: beamdeploy\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (method, path, len(data))).encode() + data)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(payload) if payload.strip() and payload.lstrip()[:1] in (b"{", b"[") else None)


def report(rep):
    """Report on an order; returns the verdict ({} when none came)."""
    try:
        _, verdict = call("POST", "/v1/hot/report", rep)
    except OSError as e:
        log("no verdict:", e)
        return {}
    return verdict or {}


def listeners():
    """The listening sockets at fd 3 on (sd_listen_fds(3)), LISTEN_* unset."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit("hotpy: LISTEN_PID is not this process: no listening sockets")
    n = int(os.environ["LISTEN_FDS"])
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    socks = [socket.socket(fileno=3 + i) for i in range(n)]
    for s in socks:
        s.setblocking(False)  # shared: another process may take a connection first
    return socks, names


def load(directory):
    """Load the "code" of the release in directory."""
    with open(os.path.join(directory, "reply.txt")) as f:
        return f.read().strip()


def serve_conn(conn):
    """Answer one HTTP/1.0 request, then close."""
    with conn:
        conn.settimeout(30)
        f = conn.makefile("rb")
        try:
            line = f.readline(65536)
            length = 0
            while True:
                h = f.readline(65536)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if length:
                f.read(length)  # read the body: closing with unread data resets the connection
            if not line:
                return
            with lock:
                reply = code["reply"]
            body = ("hello from python, %s\n" % reply).encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                         b"X-Release: " + reply.encode() + b"\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\n\r\n" + body)
        finally:
            f.close()


def in_place(order):
    """Load the new release's code in this process (mode "in_place")."""
    notify("RELOADING=1", "MONOTONIC_USEC=%d" % (time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000))
    try:
        reply = load(order["dir"])
    except OSError as e:
        notify("READY=1")  # the old code keeps serving
        log("could not load release", order["release"], e)
        report({"id": order["id"], "ok": False, "error": "load release %s: %s" % (order["release"], e)})
        return
    if reply == "hang":  # code whose loading never ends: no READY=1, no report
        log("loading release", order["release"], "hangs")
        stopping.wait()
        return
    with lock:
        old = dict(code)
        code.update(release=order["release"], reply=reply)
    notify("READY=1")
    verdict = report({"id": order["id"], "ok": True, "pid": os.getpid()})
    if not verdict.get("proceed"):
        log("beamdeploy did not record release", order["release"], "- back to", old["release"], verdict)
        with lock:
            code.update(old)


def successor(order, socks, names):
    """Start the new release with our listeners (mode "successor")."""
    env = dict(os.environ)
    for kv in order.get("env") or []:
        k, _, v = kv.partition("=")
        env[k] = v
    env["LISTEN_FDS"] = str(len(socks))
    env["LISTEN_FDNAMES"] = ":".join(names)
    try:
        child = subprocess.Popen(order["argv"], cwd=order["dir"], env=env,
                                 pass_fds=[s.fileno() for s in socks])
    except OSError as e:
        report({"id": order["id"], "ok": False, "error": "start %s: %s" % (order["argv"][0], e)})
        return False
    verdict = report({"id": order["id"], "ok": True, "pid": child.pid})
    if verdict.get("proceed"):
        return True
    log("the new process did not take over:", verdict)
    # Pause it, take the unit back, then let it drain (docs/protocol.md,
    # successor step 5): no claim of its may land after the take-back.
    try:
        os.kill(child.pid, signal.SIGSTOP)
    except ProcessLookupError:
        pass
    notify("MAINPID=%d" % os.getpid())
    try:
        os.kill(child.pid, signal.SIGTERM)
        os.kill(child.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    try:
        child.wait(order.get("drain_ns", 30e9) / 1e9)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    return False


def hot_loop(socks, names):
    unit = urllib.parse.quote(os.environ["BEAMDEPLOY_UNIT"])
    while not stopping.is_set():
        try:
            status, order = call("GET", "/v1/hot/wait?unit=" + unit)
        except OSError:
            time.sleep(1)  # the parent restarts
            continue
        if status != 200:
            if status != 204:
                time.sleep(1)
            continue
        if order.get("mode") == "in_place":
            in_place(order)
        elif successor(order, socks, names):
            stopping.set()  # handed over: drain and exit, like on SIGTERM
            return


def main():
    socks, names = listeners()
    code["reply"] = load(os.getcwd())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    poller = select.poll()
    by_fd = {}
    for s in socks:
        poller.register(s, select.POLLIN)
        by_fd[s.fileno()] = s
    if os.environ.pop("BEAMDEPLOY_SUCCESSOR", None):
        notify("MAINPID=%d" % os.getpid(), "READY=1")
    else:
        notify("READY=1")
    log("serving", code["reply"])
    threading.Thread(target=hot_loop, args=(socks, names), daemon=True).start()
    workers = []
    while not stopping.is_set():
        for fd, _ in poller.poll(100):
            try:
                conn, _ = by_fd[fd].accept()
            except (BlockingIOError, InterruptedError):
                continue  # another process took it
            conn.setblocking(True)
            t = threading.Thread(target=serve_conn, args=(conn,))
            t.start()
            workers.append(t)
        workers = [t for t in workers if t.is_alive()]
    for s in socks:
        s.close()  # close our copy; never shutdown(2) a shared socket
    for t in workers:
        t.join(25)
    log("drained")


if __name__ == "__main__":
    main()
