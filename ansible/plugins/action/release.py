# -*- coding: utf-8 -*-
# Copyright (c) beamdeploy maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Action for beamdeploy.beamdeploy.release: upload the tarball from the controller.

With C(src) on the controller (the default), the tarball's sha256 is checked
there against C(sha256) when given, the file is copied into the task's
temporary directory on the host, and the module runs with that path and
C(remote_src=true); the temporary directory is removed afterwards.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from hashlib import sha256

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import secure_hash

MODULE = "beamdeploy.beamdeploy.release"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = dict(self._task.args)
        src = args.get("src")
        if not src or args.get("remote_src"):
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        try:
            local = self._find_needle("files", src)
        except AnsibleError as e:
            result.update(failed=True, msg="release tarball %s not found on the controller: %s" % (src, to_text(e)))
            return result
        digest = secure_hash(local, sha256)
        want = args.get("sha256")
        if want and want.lower() != digest:
            result.update(failed=True, sha256=digest,
                          msg="release tarball %s: sha256 is %s, expected %s: refusing to upload it" % (local, digest, want.lower()))
            return result
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, os.path.basename(local))
        try:
            self._transfer_file(local, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            args.update(src=remote, remote_src=True, sha256=digest)
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            result["uploaded"] = remote
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
