#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) beamdeploy maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: release
short_description: Make a release of a beamdeploy app the one that serves
description:
  - >-
    Makes I(version) of the app the I(active) release on the host with a zero-downtime swap
    (C(beamdeploy upgrade), or C(beamdeploy hot-upgrade) with I(hot=true)): the new release
    starts next to the old one on the same listening socket, and the old one is drained and
    stopped only once the new one is ready. A release that crashes or never gets ready is
    stopped and the old one keeps serving; the task then fails with beamdeploy's message
    (the new unit's last journal lines) and exit code 3.
  - The tarball is uploaded from the controller (I(src)), or taken from the host
    (I(remote_src=true)); without I(src) the version must already be staged on the host
    (C(beamdeploy rollback --to VERSION)).
  - Its sha256 is checked against I(sha256) when given, and again by beamdeploy.
  - Idempotent. Nothing is swapped, and C(changed) is false, when that version already serves
    with the same checksum (the tarball's sha256, as C(beamdeploy releases) shows it).
  - I(state=previous) swaps back to the previous release (C(beamdeploy rollback)); it always
    changes something.
  - A thin wrapper over C(beamdeploy --json); needs beamdeploy on the host and the app set up
    (M(beamdeploy.beamdeploy.app)).
version_added: "0.1.0"
author:
  - beamdeploy maintainers (@beamdeploy)
options:
  app:
    description: Name of the app (as given to C(beamdeploy init)).
    type: str
    required: true
  version:
    description:
      - The release version that must serve. Required with I(state=active).
    type: str
  src:
    description:
      - Release tarball (C(NAME-VERSION.tar.gz)). A path on the controller, uploaded to the host
        for the swap and removed afterwards; with I(remote_src=true), a path on the host.
      - Without it, I(version) must already be staged on the host.
    type: path
  remote_src:
    description: I(src) is a path on the host, not on the controller.
    type: bool
    default: false
  sha256:
    description:
      - Expected sha256 of the tarball (hex). The task fails, before anything is staged, when
        the tarball's differs.
    type: str
  hot:
    description:
      - Hot-upgrade the running unit in place (C(beamdeploy hot-upgrade)) instead of a
        blue-green swap. Both releases must declare the same C(compat) key and use the Go SDK.
    type: bool
    default: false
  force:
    description:
      - Replace a staged release of the same version whose content differs (C(--force)).
        beamdeploy refuses it (exit 6) for a release that serves, drains or is being started.
    type: bool
    default: false
  note:
    description: Recorded in the app's swap history with the swap (C(beamdeploy upgrade -m NOTE)).
    type: str
  timeout:
    description:
      - Give up and roll back a swap that has not reached its cutover after this long
        (a Go duration, C(5m)). Default none.
    type: str
  state:
    description:
      - C(active) makes I(version) serve; C(previous) swaps back to the release that served
        before the current one.
    type: str
    choices: [active, previous]
    default: active
  executable:
    description: Path of the beamdeploy binary on the host. Default C(beamdeploy) from C(PATH).
    type: path
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Reports whether a swap would happen and to what, without staging or swapping.
  diff_mode:
    support: full
    description: Shows the serving release and checksum before and after.
notes:
  - The swap is zero-downtime on each host; a rolling upgrade over many hosts is the
    M(beamdeploy.beamdeploy.release) task in a play with C(serial), as the role
    C(beamdeploy.beamdeploy.rolling_upgrade) does.
seealso:
  - module: beamdeploy.beamdeploy.status
  - module: beamdeploy.beamdeploy.app
"""

EXAMPLES = r"""
- name: Serve hello 1.2.0, uploaded from the controller
  beamdeploy.beamdeploy.release:
    app: hello
    version: 1.2.0
    src: dist/hello-1.2.0.tar.gz
    sha256: "{{ lookup('file', 'dist/hello-1.2.0.tar.gz.sha256').split()[0] }}"
    note: "release train 42"
  register: swap

- name: Show what happened
  ansible.builtin.debug:
    msg: "{{ swap.old.release }} -> {{ swap.new.release }} in {{ swap.swap.total_s }} s (swap {{ swap.swap.id }})"
  when: swap.changed

- name: Hot-upgrade in place from a tarball already on the host
  beamdeploy.beamdeploy.release:
    app: hello
    version: 1.2.1
    src: /srv/releases/hello-1.2.1.tar.gz
    remote_src: true
    hot: true

- name: Go back to a release staged earlier
  beamdeploy.beamdeploy.release:
    app: hello
    version: 1.1.0

- name: Roll back to the previous release
  beamdeploy.beamdeploy.release:
    app: hello
    state: previous
"""

RETURN = r"""
release:
  description: The release that serves when the task ends.
  returned: always
  type: str
  sample: 1.2.0
sha256:
  description: Its tarball's sha256, as C(beamdeploy releases) shows it.
  returned: when known
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
unit:
  description: The unit that serves when the task ends.
  returned: always
  type: str
  sample: hello@green.service
pid:
  description: Its main process.
  returned: always
  type: int
  sample: 4242
old:
  description: The instance that served before (C(release), C(unit), C(color), C(pid), C(since)); null for a first release.
  returned: always
  type: dict
  sample: {"release": "1.1.0", "unit": "hello@blue.service", "color": "blue", "pid": 4100, "since": "2026-11-30T08:00:00Z"}
new:
  description: The instance that serves now, same keys as I(old).
  returned: always
  type: dict
  sample: {"release": "1.2.0", "unit": "hello@green.service", "color": "green", "pid": 4242, "since": "2026-11-30T08:01:00Z"}
swap:
  description:
    - The swap that ran (C(id), C(kind) blue-green or hot, C(release), C(sha256), C(ok), C(started),
      C(ready_s) start requested to READY=1, C(stop_s) stop requested to old instance gone,
      C(total_s), C(from), C(to)); null when nothing was swapped.
  returned: always
  type: dict
  sample: {"id": "20261130T080100-3f2a", "kind": "blue-green", "release": "1.2.0", "ok": true, "ready_s": 0.41, "stop_s": 0.62, "total_s": 1.58}
uploaded:
  description: Path on the host the tarball was uploaded to (removed after the task).
  returned: when I(src) was uploaded from the controller
  type: str
  sample: /root/.ansible/tmp/ansible-tmp-1/hello-1.2.0.tar.gz
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.beamdeploy.beamdeploy.plugins.module_utils.beamdeploy import (
    BeamDeploy,
    instance,
    swap_summary,
)


def current(bd, app):
    """The active instance and the staged releases by version."""
    st = bd.one(["status", app], "read the status of %s" % app, "status")
    rel = bd.one(["releases", app], "list the releases of %s" % app, "releases")
    return st.get("active"), dict((r.get("version"), r) for r in rel.get("releases") or [])


def describe(active, releases):
    if not active:
        return "release: none\n"
    r = releases.get(active.get("release")) or {}
    return "release: %s\nsha256: %s\n" % (active.get("release"), r.get("sha256", "unknown"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app=dict(type="str", required=True),
            version=dict(type="str"),
            src=dict(type="path"),
            remote_src=dict(type="bool", default=False),
            sha256=dict(type="str"),
            hot=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            note=dict(type="str"),
            timeout=dict(type="str"),
            state=dict(type="str", default="active", choices=["active", "previous"]),
            executable=dict(type="path"),
        ),
        required_if=[("state", "active", ["version"])],
        supports_check_mode=True,
    )
    p = module.params
    app = p["app"]
    bd = BeamDeploy(module)
    active, releases = current(bd, app)
    before = describe(active, releases)

    if p["state"] == "previous":
        target = [r for r in releases.values() if r.get("state") == "previous"]
        if not target:
            module.fail_json(msg="%s has no previous release to roll back to (beamdeploy releases %s shows none)" % (app, app))
        args = ["rollback", app]
        version = target[0].get("version")
        swap(module, bd, app, args, active, version, dict(before=before, after=describe({"release": version}, releases)), None)
        return

    version = p["version"]
    digest = None
    if p["src"]:
        if not os.path.isfile(p["src"]):
            module.fail_json(msg="release tarball %s not found on the host" % p["src"])
        digest = module.sha256(p["src"])
        if p["sha256"] and p["sha256"].lower() != digest:
            module.fail_json(msg="release tarball %s: sha256 is %s, expected %s: refusing to stage it" % (p["src"], digest, p["sha256"].lower()),
                             sha256=digest)
    elif p["sha256"]:
        digest = p["sha256"].lower()

    serving = active and active.get("release") == version
    staged = releases.get(version)
    if serving and (digest is None or (staged or {}).get("sha256") == digest):
        module.exit_json(changed=False, release=version, sha256=(staged or {}).get("sha256"), unit=active.get("unit"),
                         pid=active.get("pid"), old=instance(active), new=instance(active), swap=None,
                         diff=dict(before=before, after=before))

    after = "release: %s\nsha256: %s\n" % (version, digest or (staged or {}).get("sha256", "unknown"))
    if p["src"]:
        cmd = "hot-upgrade" if p["hot"] else "upgrade"
        args = [cmd, app, p["src"]]
        if not p["hot"]:
            args += ["--version", version]
        args += ["--sha256", digest]
        if p["force"]:
            args.append("--force")
    elif p["hot"]:
        module.fail_json(msg="hot: true needs src: beamdeploy hot-upgrade stages the release from its tarball")
    elif staged is None:
        module.fail_json(msg="%s %s is not staged on this host (beamdeploy releases %s): give src, the release tarball" % (app, version, app))
    else:
        args = ["rollback", app, "--to", version]
    swap(module, bd, app, args, active, version, dict(before=before, after=after), digest)


def swap(module, bd, app, args, active, target, diff, digest):
    """Run the swap command args to release target (or, in check mode, say that it would)."""
    p = module.params
    if p["note"]:
        args += ["-m", p["note"]]
    if p["timeout"]:
        args += ["--timeout", p["timeout"]]
    if module.check_mode:
        module.exit_json(changed=True, release=target, old=instance(active), new=None,
                         swap=None, unit=None, pid=None, diff=diff)
    msgs = bd.run(args, "beamdeploy %s %s" % (args[0], app))[1]
    res = None
    for m in msgs:
        if m.get("message_type") == "result":
            res = m
    if res is None:
        module.fail_json(msg="swap %s: beamdeploy printed no result" % app, messages=msgs)
    new = res.get("to") or {}
    module.exit_json(
        changed=True,
        release=res.get("release"),
        sha256=res.get("sha256") or digest,
        unit=new.get("unit"),
        pid=new.get("pid"),
        old=instance(res.get("from")),
        new=instance(new),
        swap=swap_summary(res),
        diff=diff,
    )


if __name__ == "__main__":
    main()
