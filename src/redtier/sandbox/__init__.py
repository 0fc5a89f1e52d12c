"""Sandboxes for untrusted processes: model loading and generation, and model-written code.

Every backend implements :class:`Sandbox`: ``popen`` and ``run`` start a
command with no network, read-only access to the paths it is given, one
writable folder and the caps of :class:`Limits`. ``availability()`` reports
whether a backend works on this machine, what it isolates and how to fix it.

- ``bwrap``: bubblewrap namespaces, seccomp, rlimits and cgroups. The default.
- ``process``: the same limits with Landlock instead of namespaces; isolates less.
- ``docker``: a container per command; used only when asked for by name.

``get_sandbox()`` picks the first of bwrap and process that works, and
``redtier doctor`` runs a command in each backend to show what works here.
"""

from redtier.sandbox._base import Availability, Sandbox, SandboxRun
from redtier.sandbox._bwrap import BwrapSandbox
from redtier.sandbox._docker import DockerSandbox
from redtier.sandbox._limits import GiB, Limits, MiB
from redtier.sandbox._paths import NOBODY_GID, NOBODY_UID, python_binds, readable_by
from redtier.sandbox._process import ProcessSandbox
from redtier.sandbox._registry import AUTO_ORDER, SANDBOXES, get_sandbox, grant_write, make_workdir

__all__ = [
    "AUTO_ORDER",
    "NOBODY_GID",
    "NOBODY_UID",
    "SANDBOXES",
    "Availability",
    "BwrapSandbox",
    "DockerSandbox",
    "GiB",
    "Limits",
    "MiB",
    "ProcessSandbox",
    "Sandbox",
    "SandboxRun",
    "get_sandbox",
    "grant_write",
    "make_workdir",
    "python_binds",
    "readable_by",
]
