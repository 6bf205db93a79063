#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) beamdeploy maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: status
short_description: Read what a beamdeploy app serves, and its last swaps
description:
  - Returns the active release, unit and pid of an app, whether a swap runs, the deploy lock,
    the staged releases and the last swaps (C(beamdeploy status), C(releases) and C(history),
    with C(--json)), for conditions and reports.
  - Also sets them as the fact C(beamdeploy_status_APP) (APP with characters other than
    letters, digits and C(_) replaced by C(_)).
  - Changes nothing; answers during a swap.
version_added: "0.1.0"
author:
  - beamdeploy maintainers (@beamdeploy)
options:
  app:
    description: Name of the app.
    type: str
    required: true
  history:
    description: How many of the last swaps to return (newest first).
    type: int
    default: 5
  executable:
    description: Path of the beamdeploy binary on the host. Default C(beamdeploy) from C(PATH).
    type: path
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  facts:
    support: full
    description: Sets C(beamdeploy_status_APP).
seealso:
  - module: beamdeploy.beamdeploy.release
"""

EXAMPLES = r"""
- name: What serves hello
  beamdeploy.beamdeploy.status:
    app: hello
  register: hello

- name: Stop when a swap is running
  ansible.builtin.assert:
    that: not hello.upgrading
    fail_msg: "a swap of hello is running on {{ inventory_hostname }}: {{ hello.swap_id }}"

- name: Report the fleet
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: {{ hello.release }} on {{ hello.unit }} (pid {{ hello.pid }}), last swap {{ hello.swaps[0].total_s | default('none') }} s"

- name: Use the fact it set
  ansible.builtin.debug:
    var: beamdeploy_status_hello.release
"""

RETURN = r"""
release:
  description: The active release; null when nothing serves.
  returned: always
  type: str
  sample: 1.2.0
unit:
  description: The unit that serves.
  returned: always
  type: str
  sample: hello@green.service
pid:
  description: Its main process.
  returned: always
  type: int
  sample: 4242
active:
  description: The serving instance (C(release), C(unit), C(color), C(pid), C(since)); null when nothing serves.
  returned: always
  type: dict
  sample: {"release": "1.2.0", "unit": "hello@green.service", "color": "green", "pid": 4242, "since": "2026-11-30T08:01:00Z"}
upgrading:
  description: Whether a swap is running.
  returned: always
  type: bool
  sample: false
swap_id:
  description: The running swap's id.
  returned: when upgrading
  type: str
  sample: 20261130T080100-3f2a
lock:
  description: The deploy lock (C(message), C(user), C(uid), C(since)); null when unlocked.
  returned: always
  type: dict
  sample: null
releases:
  description: The staged releases (C(version), C(state) active, draining, previous or available, C(sha256), C(staged_at), C(deployed_at)).
  returned: always
  type: list
  elements: dict
  sample: [{"version": "1.2.0", "state": "active", "sha256": "9f86d0...", "staged_at": "2026-11-30T08:00:59Z"}]
swaps:
  description: The last swaps, newest first, as in the I(swap) return of M(beamdeploy.beamdeploy.release).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "20261130T080100-3f2a", "kind": "blue-green", "release": "1.2.0", "ok": true, "total_s": 1.58}]
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.beamdeploy.beamdeploy.plugins.module_utils.beamdeploy import (
    BeamDeploy,
    instance,
    swap_summary,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app=dict(type="str", required=True),
            history=dict(type="int", default=5),
            executable=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    app = module.params["app"]
    bd = BeamDeploy(module)
    st = bd.one(["status", app], "read the status of %s" % app, "status")
    rel = bd.one(["releases", app], "list the releases of %s" % app, "releases")
    hist = bd.one(["history", app, "-n", str(max(module.params["history"], 1))], "read the swap history of %s" % app, "history")
    active = st.get("active") or {}
    facts = dict(
        app=app,
        release=active.get("release"),
        unit=active.get("unit"),
        pid=active.get("pid"),
        active=instance(st.get("active")),
        upgrading=bool(st.get("upgrading")),
        swap_id=st.get("swap") if st.get("upgrading") else None,
        lock=st.get("lock"),
        releases=[dict((k, r.get(k)) for k in ("version", "state", "sha256", "size", "staged_at", "deployed_at")) for r in rel.get("releases") or []],
        swaps=[swap_summary(s) for s in (hist.get("swaps") or [])[: module.params["history"]]],
    )
    name = "beamdeploy_status_" + re.sub(r"[^A-Za-z0-9_]", "_", app)
    module.exit_json(changed=False, ansible_facts={name: facts}, **facts)


if __name__ == "__main__":
    main()
