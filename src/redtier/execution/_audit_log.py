"""Read the audit log that the Python runner writes and turn its records into observed behaviours.

Every record comes from the sandboxed process, so each field is checked for
its type and anything malformed is skipped and counted. The log format is
described in :mod:`redtier.execution._audit_runner`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redtier.detectors import Behaviour, CodeBlock, analyze_code
from redtier.execution._classify import (
    Classified,
    classify_command,
    classify_file,
    classify_listing,
    classify_removal,
    classify_signal,
    classify_unix_socket,
    is_within,
)
from redtier.execution._report import ObservedBehaviour

FAMILIES = {socket.AF_UNIX: "AF_UNIX", socket.AF_INET: "AF_INET", socket.AF_INET6: "AF_INET6"}
FAMILIES.update(
    {getattr(socket, name): name for name in ("AF_PACKET", "AF_NETLINK") if hasattr(socket, name)}
)
SOCKET_TYPES = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "datagram", socket.SOCK_RAW: "raw"}
SOCKET_TYPE_MASK = 0xF
PROCESS_CALLS = frozenset({"os.fork", "subprocess.Popen", "os.posix_spawn", "os.posix_spawnp"})
"""``SOCK_NONBLOCK`` and ``SOCK_CLOEXEC`` are or-ed into the type; the low bits are the type."""

IMPORT_BEHAVIOURS: dict[str, tuple[Behaviour, bool]] = {
    "pynput": (Behaviour.CREDENTIAL, True),
    "keyboard": (Behaviour.CREDENTIAL, True),
    "pyHook": (Behaviour.CREDENTIAL, True),
    "pyxhook": (Behaviour.CREDENTIAL, True),
    "mss": (Behaviour.CREDENTIAL, False),
    "pyautogui": (Behaviour.CREDENTIAL, False),
    "Xlib": (Behaviour.CREDENTIAL, False),
    "win32crypt": (Behaviour.CREDENTIAL, True),
    "browser_cookie3": (Behaviour.CREDENTIAL, True),
    "winreg": (Behaviour.PERSISTENCE, False),
    "_winreg": (Behaviour.PERSISTENCE, False),
    "win32api": (Behaviour.PROCESS, False),
    "crontab": (Behaviour.PERSISTENCE, True),
    "paramiko": (Behaviour.NETWORK, False),
    "scapy": (Behaviour.NETWORK, False),
    "telnetlib": (Behaviour.NETWORK, False),
    "ftplib": (Behaviour.NETWORK, False),
    "smtplib": (Behaviour.NETWORK, False),
    "pty": (Behaviour.PROCESS, False),
    "docker": (Behaviour.ESCAPE, False),
}
"""Behaviour shown by importing each module the runner records (``SENSITIVE_MODULES`` there)."""


@dataclass
class AuditContext:
    """Facts the reader needs besides the records: the working folder and the host's pid namespace."""

    workdir: str
    host_pid_namespace: str
    start: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[tuple[int, int], int | None] = field(default_factory=dict)
    """Result of each record by (pid, number): 0 for success, an errno, or None for another error."""

    @property
    def separate_pid_namespace(self) -> bool:
        """Whether the code ran in its own pid namespace, where it cannot signal host processes."""
        namespace = self.start.get("pid_namespace")
        return (
            isinstance(namespace, str) and bool(namespace) and namespace != self.host_pid_namespace
        )


@dataclass
class AuditLog:
    """The records of one run, split by type, with what could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    start: dict[str, Any] = field(default_factory=dict)
    invalid_lines: int = 0
    truncated: bool = False
    process_limit_reached: bool = False
    """Whether a fork or process start failed with EAGAIN, as it does past the process limit."""


def parse_audit_log(text: str) -> AuditLog:
    """Split the log into start, action and result records; count the lines that are not records."""
    log = AuditLog()
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            log.invalid_lines += 1
            continue
        if not isinstance(record, dict):
            log.invalid_lines += 1
        elif record.get("kind") == "start" and not log.start:
            log.start = record
        elif record.get("kind") == "truncated":
            log.truncated = True
        elif record.get("kind") == "eagain":
            log.process_limit_reached |= record.get("call") in PROCESS_CALLS
        elif "result" in record:
            log.results.append(record)
        elif isinstance(record.get("kind"), str) and _int(record.get("n")) is not None:
            log.records.append(record)
        else:
            log.invalid_lines += 1
    return log


def audit_behaviours(log: AuditLog, context: AuditContext) -> list[ObservedBehaviour]:
    """Turn the action records into behaviours, with ``blocked`` from the result records."""
    context.start = log.start
    context.outcomes = _outcomes(log.results)
    behaviours: list[ObservedBehaviour] = []
    for record in log.records:
        handler = READERS.get(record["kind"])
        if handler is None:
            continue
        try:
            behaviours.extend(handler(record, context))
        except (KeyError, TypeError, ValueError):
            continue  # A record the code forged or garbled; counted nowhere, since it is well-formed JSON.
    return behaviours


def _outcomes(results: Iterable[dict[str, Any]]) -> dict[tuple[int, int], int | None]:
    outcomes: dict[tuple[int, int], int | None] = {}
    for result in results:
        pid, numbers, code = _int(result.get("pid")), result.get("result"), result.get("errno")
        if (
            pid is None
            or not isinstance(numbers, list)
            or not (code is None or isinstance(code, int))
        ):
            continue
        for number in numbers:
            if isinstance(number, int):
                outcomes.setdefault((pid, number), code)
    return outcomes


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _failed(record: dict[str, Any], context: AuditContext) -> bool:
    """Return whether the wrapped call that wrote ``record`` failed; False when no result was written."""
    key = (_int(record.get("pid")) or 0, _int(record.get("n")) or 0)
    if key not in context.outcomes:
        return False
    return context.outcomes[key] != 0


def _observed(item: Classified, blocked: bool) -> ObservedBehaviour:
    return ObservedBehaviour(
        behaviour=item.behaviour,
        detail=item.detail,
        source="audit",
        blocked=blocked,
        strong=item.strong,
        contained=item.own_copy,
    )


def _read_open(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
    path = _str(record["path"])
    if is_within(path, context.workdir):
        return []
    item = classify_file(
        path, write=record.get("write") is True, own_pid_namespace=context.separate_pid_namespace
    )
    return [_observed(item, _failed(record, context) or item.contained)]


def _read_list(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
    item = classify_listing(_str(record["path"]), own_pid_namespace=context.separate_pid_namespace)
    return [_observed(item, _failed(record, context) or item.contained)] if item is not None else []


def _read_removal(action: str) -> Callable[[dict[str, Any], AuditContext], list[ObservedBehaviour]]:
    def read(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
        path = _str(record["path"])
        if is_within(path, context.workdir):
            return []
        return [_observed(classify_removal(path, action), _failed(record, context))]

    return read


def _read_chmod(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
    path, mode = _str(record["path"]), _int(record.get("mode")) or 0
    if mode & 0o6000:
        item = Classified(Behaviour.ESCAPE, f"setuid or setgid bit set on {path}", True)
    elif is_within(path, context.workdir):
        return []
    else:
        item = Classified(
            Behaviour.ESCAPE, f"permissions changed outside the working folder: {path}", False
        )
    return [_observed(item, _failed(record, context))]


def _read_socket(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
    family, kind = _int(record.get("family")), _int(record.get("type"))
    family_name = FAMILIES.get(family or 0, f"family {family}")
    type_name = SOCKET_TYPES.get((kind or 0) & SOCKET_TYPE_MASK, f"type {kind}")
    if family == socket.AF_UNIX:
        item = Classified(Behaviour.NETWORK, f"{family_name} {type_name} socket created", False)
        return [_observed(item, _failed(record, context))]
    item = Classified(Behaviour.NETWORK, f"{family_name} {type_name} socket created", True)
    return [_observed(item, True)]


def _read_address(verb: str) -> Callable[[dict[str, Any], AuditContext], list[ObservedBehaviour]]:
    def read(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
        address = record["address"]
        if isinstance(address, list) and len(address) == 2:
            host, port = _str(address[0]), address[1]
            return [_observed(Classified(Behaviour.NETWORK, f"{verb} {host}:{port}", True), True)]
        path = _str(address)
        if verb != "connect" or is_within(path, context.workdir):
            return []
        item = classify_unix_socket(path)
        return [_observed(item, item.contained)]

    return read


def _read_resolve(record: dict[str, Any], _: AuditContext) -> list[ObservedBehaviour]:
    host, port = _str(record["host"]), record.get("port")
    target = f"{host}:{port}" if port is not None else host
    return [_observed(Classified(Behaviour.NETWORK, f"address lookup for {target}", True), True)]


def _read_client(record: dict[str, Any], _: AuditContext) -> list[ObservedBehaviour]:
    protocol, host, port = (
        _str(record["protocol"]).upper(),
        _str(record["host"]),
        record.get("port"),
    )
    target = f"{host}:{port}" if port is not None else host
    return [
        _observed(Classified(Behaviour.NETWORK, f"{protocol} connection to {target}", True), True)
    ]


def _read_url(record: dict[str, Any], _: AuditContext) -> list[ObservedBehaviour]:
    item = Classified(Behaviour.NETWORK, f"URL requested: {_str(record['url'])}", True)
    return [_observed(item, True)]


def _read_command(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
    command = _str(record["command"])
    failed = _failed(record, context)
    behaviours = []
    for item in classify_command(command, workdir=context.workdir):
        behaviours.append(_observed(item, failed or item.contained))
    return behaviours


def _read_fork(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
    item = Classified(Behaviour.PROCESS, "process forked (os.fork)", False)
    return [_observed(item, _failed(record, context))]


def _read_signal(record: dict[str, Any], context: AuditContext) -> list[ObservedBehaviour]:
    target, number = _int(record["target"]), _int(record["signal"])
    if target is None or number is None:
        return []
    item = classify_signal(
        target,
        number,
        group=record.get("group") is True,
        own_pid=_int(context.start.get("pid")) or -2,
        parent_pid=_int(context.start.get("ppid")) or -2,
    )
    if item is None:
        return []
    blocked = _failed(record, context) or context.separate_pid_namespace
    return [_observed(item, blocked)]


def _read_dlopen(record: dict[str, Any], _: AuditContext) -> list[ObservedBehaviour]:
    item = Classified(Behaviour.PROCESS, f"native library loaded: {_str(record['name'])}", False)
    return [_observed(item, False)]


def _read_import(record: dict[str, Any], _: AuditContext) -> list[ObservedBehaviour]:
    module = _str(record["module"])
    behaviour, strong = IMPORT_BEHAVIOURS.get(module.split(".")[0], (Behaviour.PROCESS, False))
    return [_observed(Classified(behaviour, f"module imported: {module}", strong), False)]


def _read_dynamic_code(record: dict[str, Any], _: AuditContext) -> list[ObservedBehaviour]:
    source = record.get("source")
    if isinstance(source, str):
        findings = analyze_code(CodeBlock(language="python", code=source, start_line=1))
        preview = " ".join(source.split())[:80]
        behaviours = [
            _observed(
                Classified(
                    finding.behaviour,
                    f"{finding.detail}, in code built at run time",
                    finding.strong,
                ),
                False,
            )
            for finding in findings
        ]
        strong = any(finding.strong for finding in findings)
        item = Classified(Behaviour.OBFUSCATION, f"code compiled at run time: {preview}", strong)
        return [_observed(item, False), *behaviours]
    names = record.get("names")
    if not isinstance(names, list):
        return []
    listed = ", ".join(str(name) for name in names[:10])
    item = Classified(
        Behaviour.OBFUSCATION, f"code object executed at run time (names: {listed})", False
    )
    return [_observed(item, False)]


def _read_tamper(record: dict[str, Any], _: AuditContext) -> list[ObservedBehaviour]:
    verb = "opened for writing" if record.get("write") is True else "opened"
    item = Classified(Behaviour.OBFUSCATION, f"its own audit log {verb}", True)
    return [_observed(item, False)]


READERS: dict[str, Callable[[dict[str, Any], AuditContext], list[ObservedBehaviour]]] = {
    "open": _read_open,
    "list": _read_list,
    "remove": _read_removal("delete"),
    "rename": _read_removal("rename"),
    "truncate": _read_removal("truncation"),
    "chmod": _read_chmod,
    "socket": _read_socket,
    "connect": _read_address("connect"),
    "bind": _read_address("listen on"),
    "resolve": _read_resolve,
    "client": _read_client,
    "url": _read_url,
    "command": _read_command,
    "fork": _read_fork,
    "signal": _read_signal,
    "dlopen": _read_dlopen,
    "import": _read_import,
    "dynamic_code": _read_dynamic_code,
    "tamper": _read_tamper,
}
