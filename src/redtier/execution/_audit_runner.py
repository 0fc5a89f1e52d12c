"""Run model-written Python under an audit hook and record what it tries to do, one JSON line each.

:func:`redtier.execution.run_code` starts this script inside the sandbox, after
the sandbox bootstrap has applied its limits, as::

    python -I -B .../redtier/execution/_audit_runner.py --events PATH --workdir DIR CODEFILE

It is run by path and imports only the standard library, because the Docker
backend runs it with the image's own interpreter and importing ``redtier``
would load the model stack.

Steps, in order:

1. Open the events file for appending, before any hook exists.
2. Wrap the functions whose outcome the report needs (``open``, ``os.open``,
   socket creation and ``connect``, ``os.kill``, ``os.fork``, process starts,
   removals), so that an attempt made through them gets a result record.
3. Install the audit hook (``sys.addaudithook``), compile CODEFILE, write the
   ``start`` record and execute CODEFILE as ``__main__``.

Records, one JSON object per line::

    {"n": 3, "pid": 12, "kind": "open", "path": "/etc/shadow", "write": false}
    {"result": [3], "pid": 12, "errno": 13}

``errno`` is 0 when the call succeeded and null when it failed with an
exception other than ``OSError``. Identical records are written once (a
forked child skips those its parent wrote before the fork).

The hook writes with ``os.write`` on the saved descriptor, which raises no
audit event, so the hook never calls itself. It stops writing at the size
cap, after a ``truncated`` record, or when the descriptor no longer refers
to the events file. The code runs as the same user and can rewrite the
file, so its records are the code's own claims, not facts.
"""

from __future__ import annotations

import builtins
import io
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from errno import EAGAIN
from typing import Any

MAX_TEXT = 400
"""Characters kept of a path, address or command in a record."""
MAX_SOURCE = 2000
"""Characters kept of source code compiled at run time."""
MAX_NAMES = 30
DEFAULT_MAX_BYTES = 256 * 1024
RUNNER_FAILED = 2
"""Exit status when the runner itself could not start (the code never ran)."""
NOT_COMPILED = "redtier audit runner: the code did not compile: "
"""Start of the standard-error line written when CODEFILE has a syntax error."""

SENSITIVE_MODULES = frozenset(
    {
        "pynput", "keyboard", "pyHook", "pyxhook", "mss", "pyautogui", "Xlib",
        "winreg", "_winreg", "win32api", "win32crypt", "browser_cookie3",
        "paramiko", "scapy", "telnetlib", "ftplib", "smtplib", "pty", "docker", "crontab",
    }
)  # fmt: skip
"""Top-level modules whose import is recorded; the host maps each to a behaviour."""
QUIET_READS = (
    "/usr/", "/lib/", "/lib64/", "/bin/", "/sbin/", "/etc/ld.so.", "/etc/localtime",
    "/etc/ssl/", "/etc/mime.types", "/dev/null", "/dev/urandom", "/dev/random", "/dev/zero",
    "/proc/self/status", "/proc/self/stat", "/proc/self/statm", "/proc/self/maps",
    "/proc/self/fd/", "/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu/",
)  # fmt: skip
"""Reads that every interpreter makes (libraries, time zone, entropy); not recorded."""
QUIET_WRITES = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/proc/self/fd/")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
CLIENT_EVENTS = {
    "http.client.connect": "http",
    "ftplib.connect": "ftp",
    "smtplib.connect": "smtp",
    "poplib.connect": "pop3",
    "imaplib.open": "imap",
    "nntplib.connect": "nntp",
    "telnetlib.Telnet.open": "telnet",
}
"""Audit events of standard-library network clients, which carry host and port: (self, host, port)."""


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = os.fspath(value) if hasattr(value, "__fspath__") else repr(value)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
    return value[:limit]


def _argv_text(args: Any) -> str:
    if isinstance(args, (list, tuple)):
        return " ".join(_text(arg) for arg in args)[:MAX_TEXT]
    return _text(args)


def _address(address: Any) -> Any:
    """Return a socket address as [host, port] or a path (``@name`` for an abstract unix socket)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return [_text(address[0]), address[1] if isinstance(address[1], int) else _text(address[1])]
    text = _text(address)
    return "@" + text[1:] if text.startswith("\0") else text


class Recorder:
    """Writes audit records to the events file, once each, within a size cap."""

    def __init__(self, fd: int, max_bytes: int, workdir: str, events_path: str) -> None:
        self.fd = fd
        info = os.fstat(fd)
        self.identity = (info.st_dev, info.st_ino)
        self.max_bytes = max_bytes
        self.workdir = workdir.rstrip("/") or "/"
        self.events_path = events_path
        self.code_path = ""
        self.size = 0
        self.counter = itertools.count(1)
        self.seen: set[str] = set()
        self.stopped = False
        self.armed = False
        self.local = threading.local()
        self.quiet_reads = QUIET_READS + tuple(
            folder.rstrip("/") + "/"
            for folder in {sys.prefix, sys.base_prefix, *sys.path}
            if folder
        )

    def emit(self, record: dict[str, Any]) -> int | None:
        """Write ``record`` unless it was written before in this process; return its number."""
        if self.stopped:
            return None
        key = json.dumps(record, sort_keys=True, default=repr)
        if key in self.seen:
            return None
        self.seen.add(key)
        number = next(self.counter)
        self.write({"n": number, "pid": os.getpid(), **record})
        return number

    def result(self, pid: int, numbers: list[int], errno: int | None) -> None:
        """Write the outcome of the call during which process ``pid`` wrote records ``numbers``."""
        self.write({"result": numbers, "pid": pid, "errno": errno})

    def write(self, record: dict[str, Any]) -> None:
        if self.stopped:
            return
        data = (json.dumps(record, default=repr) + "\n").encode("utf-8", "replace")
        if self.size + len(data) > self.max_bytes - 32:
            self.stopped = True
            data = b'{"kind": "truncated"}\n'
        try:
            info = os.fstat(self.fd)
            if (info.st_dev, info.st_ino) != self.identity:
                self.stopped = True
                return
            os.write(self.fd, data)
        except OSError:
            self.stopped = True
            return
        self.size += len(data)

    def pending(self) -> list[list[int]]:
        """Return this thread's stack of record numbers written during wrapped calls."""
        stack = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = []
        return stack

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """Turn an audit event into a record, swallowing any ``Exception`` so that recording
        never changes what the code does."""
        handler = HANDLERS.get(event)
        if handler is None or not self.armed or getattr(self.local, "busy", False):
            return
        self.local.busy = True
        try:
            record = handler(self, args)
            if record is not None:
                number = self.emit(record)
                stack = self.pending()
                if number is not None and stack:
                    stack[-1].append(number)
        except Exception:  # noqa: BLE001, S110 - a failure to record must not change what the code does
            pass
        finally:
            self.local.busy = False

    def own(self, path: str) -> bool:
        """Return whether ``path`` lies in the working folder."""
        return path == self.workdir or path.startswith(self.workdir + "/")

    def absolute(self, path: Any) -> str | None:
        if isinstance(path, int):
            return None
        return os.path.normpath(os.path.abspath(_text(path, 4096)))[:MAX_TEXT]

    def called_from_code(self) -> bool:
        """Return whether the Python frame that raised the event belongs to the code under test."""
        frame = sys._getframe(1)
        runner = __file__
        while frame is not None and frame.f_code.co_filename == runner:
            frame = frame.f_back
        if frame is None:
            return False
        return frame.f_code.co_filename in (self.code_path, "<string>")


def _on_open(recorder: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
    path = recorder.absolute(args[0])
    if path is None:
        return None
    mode, flags = args[1], args[2] if len(args) > 2 else 0
    if isinstance(flags, int) and flags:
        write = bool(flags & WRITE_FLAGS)
    else:
        write = any(letter in _text(mode or "") for letter in "wax+")
    if path == recorder.events_path:
        return {"kind": "tamper", "path": path, "write": write}
    if recorder.own(path) or path.startswith(QUIET_WRITES if write else recorder.quiet_reads):
        return None
    return {"kind": "open", "path": path, "write": write}


def _on_path(kind: str) -> Callable[[Recorder, tuple[Any, ...]], dict[str, Any] | None]:
    def handle(recorder: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
        path = recorder.absolute(args[0]) if args else None
        if path is None or recorder.own(path):
            return None
        if kind == "list" and path.startswith(recorder.quiet_reads):
            return None
        record: dict[str, Any] = {"kind": kind, "path": path}
        if kind == "rename" and len(args) > 1:
            record["target"] = recorder.absolute(args[1])
        return record

    return handle


def _on_chmod(recorder: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
    path = recorder.absolute(args[0])
    mode = args[1] if isinstance(args[1], int) else 0
    if path is None or (recorder.own(path) and not mode & 0o6000):
        return None
    return {"kind": "chmod", "path": path, "mode": mode}


def _on_socket(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
    return {"kind": "socket", "family": int(args[1]), "type": int(args[2])}


def _on_address(kind: str) -> Callable[[Recorder, tuple[Any, ...]], dict[str, Any]]:
    def handle(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
        return {"kind": kind, "address": _address(args[1])}

    return handle


def _on_resolve(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
    port = args[1] if isinstance(args[1], int) or args[1] is None else _text(args[1])
    return {"kind": "resolve", "host": _text(args[0]), "port": port}


def _on_client(event: str) -> Callable[[Recorder, tuple[Any, ...]], dict[str, Any]]:
    def handle(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
        port = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        return {
            "kind": "client",
            "protocol": CLIENT_EVENTS[event],
            "host": _text(args[1]),
            "port": port,
        }

    return handle


def _on_url(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
    return {"kind": "url", "url": _text(args[0])}


def _on_command(call: str, index: int) -> Callable[[Recorder, tuple[Any, ...]], dict[str, Any]]:
    def handle(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
        return {"kind": "command", "call": call, "command": _argv_text(args[index])}

    return handle


def _on_fork(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
    return {"kind": "fork"}


def _on_signal(group: bool) -> Callable[[Recorder, tuple[Any, ...]], dict[str, Any]]:
    def handle(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any]:
        return {"kind": "signal", "target": int(args[0]), "signal": int(args[1]), "group": group}

    return handle


def _on_dlopen(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
    if not args:
        return None
    # ctypes.CDLL(None) opens the running program, whose symbols include all of libc.
    name = _text(args[0]) if args[0] else "the running program itself (ctypes.CDLL(None))"
    return {"kind": "dlopen", "name": name}


def _on_lookup(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
    """Record gethostbyname and gethostbyaddr, which do not raise socket.getaddrinfo."""
    return {"kind": "resolve", "host": _text(args[0]), "port": None} if args else None


def _on_import(_: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
    module = _text(args[0])
    if module.split(".")[0] not in SENSITIVE_MODULES:
        return None
    return {"kind": "import", "module": module}


def _on_compile(recorder: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
    if not recorder.called_from_code() or args[0] is None:
        return None
    return {"kind": "dynamic_code", "source": _text(args[0], MAX_SOURCE)}


def _on_exec(recorder: Recorder, args: tuple[Any, ...]) -> dict[str, Any] | None:
    code = args[0]
    if not recorder.called_from_code() or not hasattr(code, "co_names"):
        return None
    return {"kind": "dynamic_code", "names": [_text(name) for name in code.co_names[:MAX_NAMES]]}


HANDLERS: dict[str, Callable[[Recorder, tuple[Any, ...]], dict[str, Any] | None]] = {
    "open": _on_open,
    "os.listdir": _on_path("list"),
    "os.scandir": _on_path("list"),
    "os.remove": _on_path("remove"),
    "os.rmdir": _on_path("remove"),
    "shutil.rmtree": _on_path("remove"),
    "os.rename": _on_path("rename"),
    "os.truncate": _on_path("truncate"),
    "os.chmod": _on_chmod,
    "socket.__new__": _on_socket,
    "socket.connect": _on_address("connect"),
    "socket.sendto": _on_address("connect"),
    "socket.bind": _on_address("bind"),
    "socket.getaddrinfo": _on_resolve,
    "socket.gethostbyname": _on_lookup,
    "socket.gethostbyaddr": _on_lookup,
    **{event: _on_client(event) for event in CLIENT_EVENTS},
    "urllib.Request": _on_url,
    "os.system": _on_command("os.system", 0),
    "subprocess.Popen": _on_command("subprocess.Popen", 1),
    "os.exec": _on_command("os.exec", 1),
    "os.posix_spawn": _on_command("os.posix_spawn", 1),
    "os.spawn": _on_command("os.spawn", 2),
    "os.fork": _on_fork,
    "os.forkpty": _on_fork,
    "os.kill": _on_signal(group=False),
    "os.killpg": _on_signal(group=True),
    "ctypes.dlopen": _on_dlopen,
    "import": _on_import,
    "compile": _on_compile,
    "exec": _on_exec,
}
"""Audit events recorded, by name (see the "Audit events table" of the Python 3.11 documentation)."""


def _tracked(
    recorder: Recorder, function: Callable[..., Any], label: str, errno_result: bool = False
) -> Any:
    """Wrap ``function`` so that the records written during a call get the call's outcome.

    A call that fails with EAGAIN (as a fork past the process limit does)
    also writes an ``eagain`` record, once per ``label`` and process, because
    the repeats of a deduplicated record get no result.
    With ``errno_result`` the function returns an errno instead of raising
    (``socket.connect_ex``).
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack = recorder.pending()
        pid = os.getpid()
        numbers: list[int] = []
        stack.append(numbers)
        errno: int | None = None
        try:
            value = function(*args, **kwargs)
            errno = value if errno_result and isinstance(value, int) else 0
            return value
        except OSError as error:
            errno = error.errno if error.errno is not None else -1
            if errno == EAGAIN:
                recorder.emit({"kind": "eagain", "call": label})
            raise
        finally:
            stack.pop()
            if numbers:
                recorder.result(pid, numbers, errno)

    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(wrapper, attribute, getattr(function, attribute))
        except (AttributeError, TypeError):
            pass
    wrapper.__wrapped__ = function  # type: ignore[attr-defined]
    return wrapper


def install_wrappers(recorder: Recorder) -> None:
    """Replace the common entry points of recorded actions with :func:`_tracked` wrappers."""
    opener = _tracked(recorder, io.open, "open")
    builtins.open = opener
    io.open = opener
    for name in (
        "open", "listdir", "scandir", "kill", "killpg", "fork", "remove", "unlink", "rmdir",
        "rename", "replace", "chmod", "truncate", "execv", "execve", "posix_spawn", "posix_spawnp",
    ):  # fmt: skip
        if hasattr(os, name):
            setattr(os, name, _tracked(recorder, getattr(os, name), f"os.{name}"))
    shutil.rmtree = _tracked(recorder, shutil.rmtree, "shutil.rmtree")  # type: ignore[assignment]
    popen_init = subprocess.Popen.__init__
    subprocess.Popen.__init__ = _tracked(recorder, popen_init, "subprocess.Popen")  # type: ignore[method-assign]
    socket_init = socket.socket.__init__
    socket.socket.__init__ = _tracked(recorder, socket_init, "socket.socket")  # type: ignore[method-assign]
    for name in ("connect", "bind", "sendto"):
        setattr(
            socket.socket, name, _tracked(recorder, getattr(socket.socket, name), f"socket.{name}")
        )
    connect_ex = _tracked(
        recorder, socket.socket.connect_ex, "socket.connect_ex", errno_result=True
    )
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


def _start_record() -> dict[str, Any]:
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = ""
    return {
        "kind": "start",
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "pid_namespace": pid_namespace,
    }


def _parse(argv: list[str]) -> tuple[str, str, int, str]:
    events = workdir = code = ""
    max_bytes = DEFAULT_MAX_BYTES
    index = 0
    while index < len(argv):
        option = argv[index]
        if option in ("--events", "--workdir", "--max-bytes") and index + 1 < len(argv):
            value = argv[index + 1]
            if option == "--events":
                events = value
            elif option == "--workdir":
                workdir = value
            else:
                max_bytes = int(value)
            index += 2
            continue
        code = option
        index += 1
    if not (events and workdir and code):
        sys.stderr.write(
            "usage: _audit_runner.py --events PATH --workdir DIR [--max-bytes N] CODEFILE\n"
        )
        sys.exit(RUNNER_FAILED)
    return events, os.path.realpath(workdir), max_bytes, os.path.abspath(code)


def main(argv: list[str]) -> None:
    """Record, then execute CODEFILE as ``__main__`` with ``sys.argv == [CODEFILE]``."""
    events_path, workdir, max_bytes, code_path = _parse(argv)
    try:
        fd = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        with open(code_path, "rb") as handle:
            source = handle.read()
    except OSError as error:
        sys.stderr.write(f"redtier audit runner: cannot start: {error}\n")
        sys.exit(RUNNER_FAILED)
    recorder = Recorder(fd, max_bytes, workdir, os.path.abspath(events_path))
    recorder.code_path = code_path
    install_wrappers(recorder)
    sys.addaudithook(recorder.hook)
    try:
        code = compile(source, code_path, "exec")
    except (SyntaxError, ValueError) as error:
        # compile raises ValueError when the source contains a null byte.
        where = f" (line {error.lineno})" if isinstance(error, SyntaxError) else ""
        sys.stderr.write(f"{NOT_COMPILED}{type(error).__name__}: {error.args[0]}{where}\n")
        sys.exit(RUNNER_FAILED)
    recorder.write(_start_record())

    module = type(sys)("__main__")
    module.__file__ = code_path
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    sys.argv = [code_path]
    sys.path.insert(0, os.path.dirname(code_path))
    recorder.armed = True
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the code is this script's purpose
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as error:  # noqa: BLE001 - reported as the interpreter would
        _print_traceback(error)
        sys.exit(1)


def _print_traceback(error: BaseException) -> None:
    """Print the traceback as ``python CODEFILE`` would, without the runner's own frames."""
    import traceback

    report = traceback.TracebackException.from_exception(error)
    pending = [report]
    while pending:
        current = pending.pop()
        frames = [frame for frame in current.stack if frame.filename != __file__]
        current.stack = traceback.StackSummary.from_list(frames)
        pending += [
            chained for chained in (current.__cause__, current.__context__) if chained is not None
        ]
    sys.stderr.write("".join(report.format()))


if __name__ == "__main__":
    main(sys.argv[1:])
