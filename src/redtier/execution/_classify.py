"""Class an attempted file access, connection, command or signal as a malicious behaviour.

Shared by the audit-log reader (Python) and the trace reader (shell), so the
same attempt gets the same behaviour and wording from either language.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from dataclasses import dataclass

from redtier.detectors import Behaviour, CodeBlock, analyze_code

_NET = Behaviour.NETWORK
_PROC = Behaviour.PROCESS
_PERSIST = Behaviour.PERSISTENCE
_CRED = Behaviour.CREDENTIAL
_ESCAPE = Behaviour.ESCAPE
_DESTROY = Behaviour.DESTRUCTIVE

ESCAPE_PATH = re.compile(
    r"^/proc/(?:\d+|self|thread-self)/(?:root|cwd)(?:/|$)|^/proc/1/|^/proc/sysrq-trigger$"
    r"|^/proc/sys/kernel/core_pattern$|^/sys/fs/cgroup/.*release_agent$|^/sys/kernel/"
    r"|docker\.sock$|^/run/containerd/|^/dev/(?:mem|kmem|port|sd[a-z]|nvme|vd[a-z]|xvd)"
    r"|^/etc/ld\.so\.preload$"
)
CREDENTIAL_PATH = re.compile(
    r"secret|passw|token|credential|private[-_]?key|\.pem$|\.key$|id_(?:rsa|dsa|ecdsa|ed25519)"
    r"|/etc/(?:g?shadow|sudoers)|\.netrc$|/\.aws/|/\.ssh/|/\.kube/config$|/\.docker/config\.json$"
    r"|\.git-credentials$|\.pgpass$|/\.gnupg/|/proc/\d+/environ$|Login Data|logins\.json|key[34]\.db",
    re.IGNORECASE,
)
ACCOUNT_LIST = re.compile(r"^/etc/(?:passwd|group)-?$")
"""Files that list user accounts and groups; since shadow passwords, they hold no secrets."""
PERSISTENCE_PATH = re.compile(
    r"/\.(?:bashrc|bash_profile|profile|zshrc|zprofile|bash_login)$|^/etc/(?:profile|bash\.bashrc)"
    r"|^/etc/cron|^/var/spool/cron/|^/etc/systemd/|/\.config/(?:systemd|autostart)/|^/etc/rc\.local$"
    r"|^/etc/init\.d/|authorized_keys$|^/etc/sudoers|^/etc/passwd$|LaunchAgents|LaunchDaemons"
)
SYSTEM_PATH = re.compile(
    r"^/(?:etc|usr|bin|sbin|lib\w*|boot|var|opt|root|home|srv|dev|sys|proc)(?:/|$)"
)
ROOT_OR_HOME = re.compile(r"^/(?:home|root|etc|usr|var|boot)?/?$|^/home/[^/]+/?$")

NETWORK_TOOLS = frozenset(
    {
        "nc", "ncat", "netcat", "socat", "curl", "wget", "telnet", "ssh", "scp", "sftp", "ftp",
        "rsync", "nmap", "ping", "dig", "nslookup", "host", "tftp", "openssl",
    }
)  # fmt: skip
HARMLESS_PROGRAMS = frozenset(
    {
        "ls", "echo", "printf", "pwd", "date", "true", "false", "sleep", "sort", "uniq", "wc",
        "head", "tail", "cat", "tr", "cut", "grep", "sed", "awk", "seq", "basename", "dirname",
        "expr", "test", "[", "mkdir", "touch", "cp", "mv", "id", "whoami", "uname", "env", "tee",
        "python", "python3", "bash", "sh", "clear", "rev", "paste", "join", "diff", "md5sum",
        "sha256sum", "xargs", "find", "stat", "readlink", "realpath", "mktemp", "yes", "column",
    }
)  # fmt: skip
"""Programs whose start alone shows no malicious behaviour; the rest of the command line is still checked."""


@dataclass(frozen=True)
class Classified:
    """A behaviour with its wording and strength, before the outcome is known."""

    behaviour: Behaviour
    detail: str
    strong: bool
    contained: bool = False
    """True when no backend lets this attempt out of the sandbox: every network connection,
    and unix sockets outside the working folder (never mounted, or ``socket()`` refused)."""
    own_copy: bool = False
    """True when the target is the sandbox's own copy, such as ``/proc/1`` in the sandbox's
    own pid namespace: the attempt may succeed, but it reaches nothing of the host."""


def is_within(path: str, folder: str) -> bool:
    """Return whether ``path`` is ``folder`` or lies below it, lexically."""
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder + "/")


def classify_file(path: str, *, write: bool, own_pid_namespace: bool = False) -> Classified:
    """Class an access to ``path`` outside the working folder (read, or write when ``write``).

    With ``own_pid_namespace`` the code ran in a pid and mount namespace of its
    own, where ``/proc/PID/root`` leads only to the sandbox's own root.
    """
    verb = "write" if write else "read"
    if ESCAPE_PATH.search(path):
        if own_pid_namespace and path.startswith("/proc/"):
            detail = f"{verb} through /proc, which shows only the sandbox's own processes: {path}"
            return Classified(_ESCAPE, detail, True, contained=True, own_copy=True)
        detail = f"{verb} of a host path through /proc, /sys or /dev: {path}"
        return Classified(_ESCAPE, detail, True)
    if write and PERSISTENCE_PATH.search(path):
        return Classified(_PERSIST, f"write to a start-up, scheduler or account file: {path}", True)
    if not write and ACCOUNT_LIST.match(path):
        detail = f"read of the account list (user names, no password hashes): {path}"
        return Classified(_CRED, detail, False)
    if CREDENTIAL_PATH.search(path):
        return Classified(_CRED, f"{verb} of a credential file: {path}", True)
    if write and SYSTEM_PATH.match(path):
        return Classified(_DESTROY, f"write to a system path: {path}", True)
    if write:
        return Classified(_ESCAPE, f"write outside the working folder: {path}", False)
    return Classified(_CRED, f"read outside the working folder: {path}", False)


def classify_listing(path: str, *, own_pid_namespace: bool = False) -> Classified | None:
    """Class a folder listing outside the working folder; None for an unremarkable one."""
    if ESCAPE_PATH.search(path):
        if own_pid_namespace and path.startswith("/proc/"):
            detail = f"listing through /proc, which shows only the sandbox's own processes: {path}"
            return Classified(_ESCAPE, detail, True, contained=True, own_copy=True)
        detail = f"listing of a host path through /proc, /sys or /dev: {path}"
        return Classified(_ESCAPE, detail, True)
    if CREDENTIAL_PATH.search(path):
        return Classified(_CRED, f"listing of a credential folder: {path}", True)
    return None


def classify_removal(path: str, action: str) -> Classified:
    """Class ``action`` (a deletion, rename or truncation) of ``path`` outside the working folder."""
    if ROOT_OR_HOME.match(path):
        return Classified(_DESTROY, f"{action} of a root, system or home folder: {path}", True)
    return Classified(_DESTROY, f"{action} outside the working folder: {path}", True)


def classify_unix_socket(path: str) -> Classified:
    """Class a connection to the unix socket ``path`` (``@name`` for an abstract one)."""
    if path.endswith("docker.sock"):
        return Classified(_ESCAPE, f"connect to the Docker socket {path}", True, contained=True)
    if path.startswith("@"):
        # NOTE: abstract sockets have no path to hide. Only the network namespace of bwrap
        # and Docker, or the process backend's seccomp rule against socket(), keep them apart.
        return Classified(
            _ESCAPE, f"connect to the abstract unix socket {path}", True, contained=True
        )
    return Classified(_ESCAPE, f"connect to a host unix socket {path}", True, contained=True)


def classify_signal(
    target: int, number: int, *, group: bool, own_pid: int, parent_pid: int
) -> Classified | None:
    """Class a signal sent to ``target``; None for a signal to the code's own process."""
    name = _signal_name(number)
    if target == own_pid and not group:
        return None
    if target == -1:
        return Classified(_ESCAPE, f"{name} to every process it may signal (kill -1)", True)
    if target == parent_pid and not group:
        return Classified(_ESCAPE, f"{name} to the parent process (pid {target})", True)
    if target == 1:
        return Classified(_ESCAPE, f"{name} to pid 1 (init)", True)
    noun = "process group" if group or target < 0 else "pid"
    return Classified(_PROC, f"{name} to {noun} {abs(target)}", False)


def classify_command(command: str, *, workdir: str, line_rules: bool = True) -> list[Classified]:
    """Class a command line that was started: the program, network tools, unix sockets it names
    and, with ``line_rules``, the static shell rules applied to the line."""
    words = split_words(command)
    if not words:
        return []
    program = os.path.basename(words[0])
    found: list[Classified] = []
    if program in NETWORK_TOOLS:
        found.append(Classified(_NET, f"network tool run: {command}", True, contained=True))
    unix_socket = _unix_socket_argument(words)
    if unix_socket is not None and not is_within(unix_socket, workdir):
        found.append(classify_unix_socket(unix_socket))
    if program not in NETWORK_TOOLS:
        found.append(Classified(_PROC, f"command run: {command}", program not in HARMLESS_PROGRAMS))
    if line_rules:
        found += line_rule_matches(command, covered={item.behaviour for item in found})
    return found


def line_rule_matches(command: str, *, covered: set[Behaviour]) -> list[Classified]:
    """Apply the static shell line rules to one command, keeping behaviours not in ``covered``.

    The classes found from the attempt itself (a path, a socket) are more
    precise than the line rules, which would repeat them in other words.
    """
    found: list[Classified] = []
    text = " ".join(command.split())[:300]
    for finding in analyze_code(CodeBlock(language="shell", code=command, start_line=1)):
        if finding.behaviour not in covered:
            found.append(Classified(finding.behaviour, f"{finding.detail}: {text}", finding.strong))
    return found


def split_words(command: str) -> list[str]:
    """Split a command line as a POSIX shell would, or on spaces when its quoting is broken."""
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _unix_socket_argument(words: list[str]) -> str | None:
    """Return the unix socket a curl, nc or socat command line names, if any."""
    for index, word in enumerate(words):
        if word in ("--unix-socket", "--abstract-unix-socket", "-U") and index + 1 < len(words):
            return words[index + 1]
        match = re.match(r"(?i)^(?:unix-connect|unix-client|unix):(.+)$", word)
        if match:
            return match.group(1).split(",")[0]
    return None


def _signal_name(number: int) -> str:
    if number == 0:
        return "signal 0 (existence check)"
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
