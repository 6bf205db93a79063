#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) beamdeploy maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app
short_description: Set up a beamdeploy app (its socket, parent unit and configuration)
description:
  - >-
    Makes sure the app exists with the given listen addresses, command, user and timeouts:
    C(/etc/beamdeploy/APP.json), C(APP.socket) and C(APP.service), enabled and running
    (C(beamdeploy init)).
  - C(changed) only when the configuration differs. Settings this module does not manage
    (C(hooks), C(keep_releases)) are kept as they are.
  - >-
    Before a change is applied, C(beamdeploy check APP) validates the new configuration and
    units; when it fails, the previous files are put back and the task fails with check's
    errors. A change is applied by restarting the parent (C(systemctl restart APP)): the
    running instances keep serving and the new settings apply from the next swap. A change
    of I(listen) also restarts C(APP.socket), which closes the old listening sockets: the app
    does not serve for a moment (the module warns).
  - The first release is deployed with M(beamdeploy.beamdeploy.release).
  - I(state=absent) stops the app and removes its units and configuration (C(beamdeploy remove)).
version_added: "0.1.0"
author:
  - beamdeploy maintainers (@beamdeploy)
options:
  name:
    description: Name of the app.
    type: str
    required: true
    aliases: [app]
  listen:
    description:
      - Addresses to listen on, anything C(ListenStream=) takes (C(8080), C(127.0.0.1:8080),
        C([::1]:8080), C(/run/APP.sock)). Required with I(state=present).
    type: list
    elements: str
  exec:
    description:
      - The app's command line as a list (program first), relative to the release root
        (C([bin/hello])). Required with I(state=present).
    type: list
    elements: str
  user:
    description:
      - Who the instances run as, C(dynamic) (a user systemd allocates, C(DynamicUser=yes)),
        C(root), or the name of an existing user.
    type: str
    default: dynamic
  ready_timeout:
    description: How long a new instance may take to send READY=1 (a Go duration).
    type: str
    default: 1m0s
  drain_timeout:
    description: How long an old instance may drain before it is killed.
    type: str
    default: 30s
  settle:
    description: How long a new instance must keep running after READY=1 before the old one is stopped (C(0) turns it off).
    type: str
    default: 500ms
  state:
    description: C(present) sets the app up; C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: With I(state=absent), also delete the app's releases and state (C(--purge)).
    type: bool
    default: false
  executable:
    description: Path of the beamdeploy binary on the host. Default C(beamdeploy) from C(PATH).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports whether the configuration would change, writing nothing.
  diff_mode:
    support: full
    description: Shows the managed settings before and after.
seealso:
  - module: beamdeploy.beamdeploy.release
"""

EXAMPLES = r"""
- name: Set hello up on port 8080
  beamdeploy.beamdeploy.app:
    name: hello
    listen: ["8080"]
    exec: [bin/hello]
    drain_timeout: 10s

- name: Run it as an existing user
  beamdeploy.beamdeploy.app:
    name: hello
    listen: ["127.0.0.1:8080"]
    exec: [bin/hello, --verbose]
    user: www-data

- name: Remove it, with its releases
  beamdeploy.beamdeploy.app:
    name: hello
    state: absent
    purge: true
"""

RETURN = r"""
config:
  description: The managed settings after the task (C(listen), C(exec), C(user), C(ready_timeout), C(drain_timeout), C(settle)).
  returned: when state is present
  type: dict
  sample: {"listen": ["8080"], "exec": ["bin/hello"], "user": "dynamic", "ready_timeout": "1m0s", "drain_timeout": "30s", "settle": "500ms"}
restarted:
  description: The units restarted to apply a change.
  returned: when state is present
  type: list
  elements: str
  sample: ["hello.service"]
check:
  description: The output of C(beamdeploy check APP) for the new configuration.
  returned: when a change was applied
  type: str
  sample: "hello: configuration and units are valid"
"""

import json
import os
import shlex
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.beamdeploy.beamdeploy.plugins.module_utils.beamdeploy import (
    BeamDeploy,
    duration_ns,
    exit_meaning,
)

ETC = "/etc/beamdeploy"
UNITS = "/etc/systemd/system"
DEFAULTS = dict(ready_timeout="1m0s", drain_timeout="30s", settle="500ms")
MANAGED = ("listen", "exec", "user", "ready_timeout", "drain_timeout", "settle")


def files_of(name):
    return [os.path.join(ETC, name + ".json"), os.path.join(UNITS, name + ".socket"), os.path.join(UNITS, name + ".service")]


def effective(cfg):
    """The managed settings of a configuration as beamdeploy applies them."""
    out = dict(listen=list(cfg.get("listen") or []), exec=list(cfg.get("exec") or []),
               user=cfg.get("user", "root"))  # no "user": written before dynamic users, runs as root
    for k, v in DEFAULTS.items():
        out[k] = duration_ns(cfg.get(k) or v)
    return out


def show(settings):
    s = dict(settings)
    for k in DEFAULTS:
        s[k] = "%gs" % (s[k] / 1e9)
    return json.dumps(s, indent=2, sort_keys=True) + "\n"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["app"]),
            listen=dict(type="list", elements="str"),
            exec=dict(type="list", elements="str"),
            user=dict(type="str", default="dynamic"),
            ready_timeout=dict(type="str", default=DEFAULTS["ready_timeout"]),
            drain_timeout=dict(type="str", default=DEFAULTS["drain_timeout"]),
            settle=dict(type="str", default=DEFAULTS["settle"]),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            purge=dict(type="bool", default=False),
            executable=dict(type="path"),
        ),
        required_if=[("state", "present", ["listen", "exec"])],
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    path = files_of(name)[0]
    old = None
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except ValueError as e:
            module.fail_json(msg="%s: not valid JSON (%s): fix or remove it, then run again" % (path, e))
    if p["state"] == "absent":
        absent(module, name, old)
    try:
        want = effective(dict((k, p[k]) for k in MANAGED))
    except ValueError as e:
        module.fail_json(msg="%s: %s" % (name, e))
    have = effective(old) if old is not None else None
    diff = dict(before=show(have) if have else "", after=show(want))
    result = dict(config=dict((k, p[k]) for k in MANAGED), restarted=[], diff=diff)
    if have == want:
        module.exit_json(changed=False, **result)
    if module.check_mode:
        module.exit_json(changed=True, **result)
    bd = BeamDeploy(module)
    backup = save(files_of(name))
    try:
        result["check"] = apply(module, bd, name, old, want, backup)
        units = [name + ".service"]
        if have is not None and have["listen"] != want["listen"]:
            module.warn("%s: listen addresses changed: restarting %s.socket closes the old sockets, so the app does not serve for a moment" % (name, name))
            units = [name + ".socket", name + ".service"]
        start(module, name, units if have is not None else [])
        result["restarted"] = units if have is not None else []
    finally:
        shutil.rmtree(backup["dir"], ignore_errors=True)
    module.exit_json(changed=True, **result)


def apply(module, bd, name, old, want, backup):
    """Write the new files with beamdeploy init, keep unmanaged settings, check them."""
    args = ["init", name, "--exec", " ".join(shlex.quote(a) for a in want["exec"]), "--user", module.params["user"],
            "--ready-timeout", module.params["ready_timeout"], "--drain-timeout", module.params["drain_timeout"],
            "--settle", module.params["settle"], "--force", "--no-start"]
    for a in want["listen"]:
        args += ["--listen", a]
    rc, out, err = module.run_command([bd.bin] + args)
    if rc != 0:
        restore(module, name, backup)
        module.fail_json(msg="set %s up: beamdeploy init exited %d (%s): %s" % (name, rc, exit_meaning(rc), err.strip() or out.strip()), rc=rc, stderr=err)
    if old:
        path = files_of(name)[0]
        with open(path) as f:
            cfg = json.load(f)
        for k, v in old.items():
            if k not in MANAGED and k not in cfg:
                cfg[k] = v
        fd, tmp = tempfile.mkstemp(dir=ETC, prefix="." + name + ".")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(cfg, indent=2) + "\n")
        os.chmod(tmp, 0o644)
        module.atomic_move(tmp, path)
    rc, out, err = module.run_command([bd.bin, "check", name])
    if rc != 0:
        restore(module, name, backup)
        module.fail_json(msg="beamdeploy check %s refused the new configuration (exit %d, %s); the previous files are back: %s"
                         % (name, rc, exit_meaning(rc), err.strip()), rc=rc, stderr=err, stdout=out)
    return out.strip()


def save(paths):
    """Copy the app's files aside so that restore can put them back."""
    saved = dict(dir=tempfile.mkdtemp(prefix="beamdeploy-app-"))
    for i, pth in enumerate(paths):
        saved[pth] = None
        if os.path.exists(pth):
            saved[pth] = os.path.join(saved["dir"], str(i))
            shutil.copy2(pth, saved[pth])
    return saved


def restore(module, name, backup):
    """Put the files save copied back (and remove those that did not exist)."""
    for pth in files_of(name):
        src = backup.get(pth)
        if src is None:
            if os.path.exists(pth):
                os.unlink(pth)
        else:
            shutil.copy2(src, pth)
    module.run_command(["systemctl", "daemon-reload"])


def start(module, name, restart):
    for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", name + ".socket", name + ".service"]):
        rc, out, err = module.run_command(cmd)
        if rc != 0:
            module.fail_json(msg="start %s: %s exited %d: %s (see journalctl -u %s.service)" % (name, " ".join(cmd), rc, err.strip(), name))
    if restart:
        cmd = ["systemctl", "restart"] + restart
        rc, out, err = module.run_command(cmd)
        if rc != 0:
            module.fail_json(msg="apply the new configuration of %s: %s exited %d: %s (see journalctl -u %s.service)"
                             % (name, " ".join(cmd), rc, err.strip(), name))


def absent(module, name, old):
    exists = old is not None or any(os.path.exists(f) for f in files_of(name)[1:])
    if not exists:
        module.exit_json(changed=False)
    if module.check_mode:
        module.exit_json(changed=True, diff=dict(before=show(effective(old)) if old else "", after=""))
    bd = BeamDeploy(module)
    args = ["remove", name] + (["--purge"] if module.params["purge"] else [])
    bd.run(args, "remove %s" % name)
    module.exit_json(changed=True, diff=dict(before=show(effective(old)) if old else "", after=""))


if __name__ == "__main__":
    main()
