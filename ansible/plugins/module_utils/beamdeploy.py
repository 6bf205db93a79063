# -*- coding: utf-8 -*-
# Copyright (c) beamdeploy maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Run ``beamdeploy --json`` for the collection's modules.

Every module is a thin wrapper over the CLI: this helper runs it, decodes the
JSON objects it prints (one per line, each with a ``message_type``) and turns
a non-zero exit into a failure that carries beamdeploy's own error, its exit
code and what that code means.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

# The exit codes of beamdeploy (README, "Exit status").
EXIT_MEANINGS = {
    1: "failure",
    2: "usage error",
    3: "the swap failed and was rolled back: the old release keeps serving",
    4: "the parent (APP.service) is not running: systemctl start APP.service",
    5: "another swap is in progress",
    6: "the release is in use (serving, draining or being started by a swap): --force cannot replace it; stage the new build as another version",
    7: "the app is locked (beamdeploy lock): nothing was swapped; beamdeploy unlock APP lifts the lock",
    130: "interrupted",
}

# Go's time.Duration strings ("1m30s", "500ms").
_DURATION_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|\u00b5s|ms|s|m|h)")


def duration_ns(text):
    """Return a Go duration string as nanoseconds; ValueError if it is none."""
    s = str(text).strip()
    if s in ("0", ""):
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError("%r is not a duration such as 30s, 1m30s or 500ms" % text)
    return int(round(total))


def exit_meaning(rc):
    """What beamdeploy's exit code rc means."""
    return EXIT_MEANINGS.get(rc, "failure")


class BeamDeploy(object):
    """Runs the beamdeploy CLI for one module invocation."""

    def __init__(self, module):
        self.module = module
        exe = module.params.get("executable")
        self.bin = exe or module.get_bin_path("beamdeploy", required=True, opt_dirs=["/usr/local/bin"])

    def run(self, args, what, ok_codes=(0,)):
        """Run ``beamdeploy --json ARGS``.

        Returns (rc, messages, stderr): messages are the JSON objects printed
        on stdout. An exit code not in ok_codes fails the module, saying what
        it was doing (what), the code, its meaning and beamdeploy's message.
        """
        cmd = [self.bin, "--json"] + list(args)
        rc, out, err = self.module.run_command(cmd)
        msgs = decode(out)
        if rc not in ok_codes:
            self.fail(what, cmd, rc, msgs, err)
        return rc, msgs, err

    def fail(self, what, cmd, rc, msgs, err):
        """Fail the module for a beamdeploy command that exited rc."""
        detail = error_of(err)
        message = detail.get("message") or last_line(err) or "no message"
        journal = detail.get("journal") or []
        if journal:
            # the new unit's last lines say why it failed: the last few in msg, all in journal
            message += "; last journal lines of %s: %s" % (detail.get("unit"), " | ".join(journal[-5:]))
        self.module.fail_json(
            msg="%s: beamdeploy exited %d (%s): %s" % (what, rc, exit_meaning(rc), message),
            rc=rc,
            journal=journal,
            exit_meaning=exit_meaning(rc),
            beamdeploy_error=detail,
            cmd=cmd,
            stderr=err,
            messages=msgs,
        )

    def one(self, args, what, message_type):
        """Run a command that prints one object of message_type; return it."""
        msgs, err = self.run(args, what)[1:]
        for m in msgs:
            if m.get("message_type") == message_type:
                return m
        self.module.fail_json(msg="%s: beamdeploy printed no %s object" % (what, message_type), stderr=err, messages=msgs)
        return None  # not reached


def decode(text):
    """The JSON objects in text, one per line; other lines are skipped."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def error_of(stderr):
    """beamdeploy's exit_error object from stderr, or {}."""
    for m in reversed(decode(stderr)):
        if m.get("message_type") == "exit_error":
            return m
    return {}


def last_line(text):
    lines = [x for x in (text or "").splitlines() if x.strip()]
    return lines[-1] if lines else ""


def instance(inst):
    """The parts of a beamdeploy instance object a playbook uses."""
    if not inst:
        return None
    return {
        "release": inst.get("release"),
        "unit": inst.get("unit"),
        "color": inst.get("color"),
        "pid": inst.get("pid"),
        "since": inst.get("since"),
    }


def swap_summary(res):
    """A swap result with times in seconds."""
    if not res:
        return None
    return {
        "id": res.get("id"),
        "kind": res.get("kind"),
        "release": res.get("release"),
        "sha256": res.get("sha256"),
        "ok": res.get("ok"),
        "error": res.get("error"),
        "started": res.get("started"),
        "ready_s": ns_to_s(res.get("ready_ns")),
        "stop_s": ns_to_s(res.get("stop_ns")),
        "total_s": ns_to_s(res.get("total_ns")),
        "from": instance(res.get("from")),
        "to": instance(res.get("to")),
        "command": res.get("command"),
        "user": res.get("user"),
        "message": res.get("message"),
    }


def ns_to_s(v):
    if v is None:
        return None
    return round(v / 1e9, 3)
