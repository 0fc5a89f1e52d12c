"""Give the sandbox user write access to one host folder."""

from __future__ import annotations

import os
from pathlib import Path

from redtier.sandbox._base import Sandbox


def grant_write(sandbox: Sandbox, folder: Path) -> None:
    """Make ``folder`` and everything in it owned by the sandbox's uid, when running as root.

    A backend that runs its process as an unprivileged uid (``uid`` attribute)
    cannot otherwise write to a folder that root created. Without root, the
    sandbox runs as the current user, who already owns the folder.
    """
    uid = getattr(sandbox, "uid", None)
    if uid is None or os.geteuid() != 0:
        return
    gid = getattr(sandbox, "gid", uid)
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        if path.stat().st_uid != uid:
            os.chown(path, uid, gid)
