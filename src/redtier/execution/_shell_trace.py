"""Trace a shell script with ``bash -x`` and turn the trace into observed behaviours.

The script runs as ``bash CODEFILE`` with ``BASH_ENV`` pointing to the file
that :func:`bash_init` writes, which every bash started in the sandbox (the
script and any ``bash -c`` it runs) reads first. The first one opens
descriptor 9 on the trace file. Each one then ignores SIGXFSZ, writes a
start line and turns on ``xtrace`` on descriptor 9. Its ``PS4`` puts the
line number and the unexpanded command (``BASH_COMMAND``, which still shows
redirections) before the expanded words::

    #redtier-start<TAB>PID<TAB>PPID<TAB>pid:[4026532178]
    +<TAB>2<TAB>'echo hi > "$T/x.txt"'<TAB>echo hi

Bash writes each trace line before it runs the command, so the trace is
complete when bash is killed. A long loop fills the trace file up to
``Limits.file_size_bytes``; ignoring SIGXFSZ makes the writes past that fail
instead of killing the script. Programs the script starts inherit the
ignored SIGXFSZ, so for them too a write past the limit fails with
"File too large" rather than a signal.

Bash's error messages on standard error name the line of a failed
redirection or ``kill``, so they show which attempts were blocked. The
script can turn tracing off, close descriptor 9 or write fake lines to it,
so the trace is the script's own claim, like the Python audit log.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field

from redtier.detectors import Behaviour
from redtier.execution._classify import (
    NETWORK_TOOLS,
    Classified,
    classify_command,
    classify_file,
    classify_removal,
    classify_signal,
    is_within,
    line_rule_matches,
    split_words,
)
from redtier.execution._report import ObservedBehaviour

TRACE_FD = 9
MAX_RECORDS = 5000
"""Distinct trace records read; a loop repeats the same few."""
MAX_EXPANDED_CHARS = 2000
"""Characters of a record's expanded words that are read; a runaway string grows without bound."""


def bash_init(trace_path: str) -> str:
    """Return the ``BASH_ENV`` file: the trace descriptor (once), a start line, then ``xtrace``."""
    return (
        f"if ! {{ : >&{TRACE_FD}; }} 2>/dev/null; then exec {TRACE_FD}>>{shlex.quote(trace_path)}; fi\n"
        "trap '' XFSZ\n"
        'printf \'#redtier-start\\t%s\\t%s\\t%s\\n\' "$$" "$PPID" '
        f'"$(readlink /proc/$$/ns/pid 2>/dev/null)" >&{TRACE_FD}\n'
        f"BASH_XTRACEFD={TRACE_FD}\n"
        "PS4=$'+\\t${LINENO}\\t${BASH_COMMAND@Q}\\t'\n"
        "set -x\n"
    )


START_LINE = re.compile(r"^#redtier-start\t(-?\d+)\t(-?\d+)\t(.*)$")
TRACE_LINE = re.compile(r"^\++\t(\d+)\t([^\t]*)\t(.*)$")
ERROR_LINE = re.compile(r"^(?P<script>.+?): line (?P<line>\d+): (?P<message>.*)$")
ERRNO_TEXT = re.compile(
    r"No such file or directory|Permission denied|Read-only file system|Operation not permitted"
    r"|Connection refused|Network is unreachable|Cannot assign requested address"
    r"|Address family not supported|Not a directory|Is a directory|No space left on device"
    r"|File too large|Resource temporarily unavailable|command not found|No such process"
    r"|Could not resolve host|Failed to connect|Couldn't connect"
)
REDIRECTION = re.compile(
    r"(?<![<>&])(?:\d*|&)(>>|>\||>|<>|<)(?![&(<])\s*(\"[^\"]*\"|'[^']*'|[^\s;|&<>()]+)"
)
ABSOLUTE_PATH = re.compile(r"(?<![\w.~$])/[\w.@+-][\w./@+-]*")
"""An absolute path anywhere in a command line, quoted or inside ``$(...)`` or ``eval``."""
DEV_NET = re.compile(r"/dev/(tcp|udp)/([^/\s\"']+)/([^\s\"';|&<>)]+)")
STREAM_TARGETS = re.compile(
    r"^/dev/(?:null|stdout|stderr|stdin|tty|fd/\d+|zero|u?random)$|^/proc/self/fd/"
)
QUIET_ARGUMENTS = (
    "/usr/",
    "/bin/",
    "/sbin/",
    "/lib",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/proc/self/",
)
MAX_CONTINUATION_LINES = 50

SHELL_BUILTINS = frozenset(
    {
        "echo", "printf", "cd", "test", "[", "[[", "read", "local", "export", "set", "shift",
        "return", "exit", "true", "false", ":", "declare", "typeset", "let", "unset", "trap",
        "wait", "eval", "readonly", "shopt", "alias", "unalias", "getopts", "pushd", "popd",
        "dirs", "umask", "ulimit", "type", "hash", "help", "break", "continue", "for", "while",
        "until", "if", "case", "select", "function", "time", "mapfile", "readarray", "jobs",
        "disown", "bg", "fg", "caller", "enable", "logout", "compgen", "complete", "fc",
        "history", "command", "builtin", "source", ".",
    }
)  # fmt: skip
"""Builtins and keywords that start no process; what they lead to shows in later records or the line rules."""
REMOVERS = frozenset({"rm", "rmdir", "shred", "unlink", "truncate"})
WRITERS_ALL = frozenset({"tee", "touch", "mkdir"})
"""Programs that write every path argument."""
WRITERS_LAST = frozenset({"cp", "mv", "install", "ln", "rsync"})
"""Programs that write their last path argument and read the others."""
BASH_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "v": "\v",
}


@dataclass
class TraceRecord:
    """One traced simple command."""

    line: int
    raw: str
    """The command as written, with redirections, before expansion (``BASH_COMMAND``)."""
    expanded: str
    """The words bash executed, after expansion, quoted as bash quotes them in a trace."""


@dataclass
class Trace:
    """A parsed trace with the script's error messages."""

    records: list[TraceRecord] = field(default_factory=list)
    """Distinct records, in order of first appearance."""
    starts: list[tuple[int, int, str]] = field(default_factory=list)
    """(pid, parent pid, pid namespace) of every bash that read the start-up file, first the script's."""
    errors: dict[int, list[str]] = field(default_factory=dict)
    """Error messages of the script by line number, such as ``/x/y: Permission denied``."""
    failures: list[str] = field(default_factory=list)
    """Lines of standard error with a reason such as "Permission denied", from bash or any program."""
    cut_short: bool = False
    """Whether records were left out because there were more than :data:`MAX_RECORDS`."""


def parse_trace(trace_text: str, stderr: str, script: str) -> Trace:
    """Read the trace records and start lines, and the errors that standard error reports."""
    trace = Trace()
    for line in stderr.splitlines():
        if not ERRNO_TEXT.search(line):
            continue
        trace.failures.append(line)
        error = ERROR_LINE.match(line)
        if error and error.group("script") == script:
            trace.errors.setdefault(int(error.group("line")), []).append(error.group("message"))
    seen: set[tuple[int, str, str]] = set()
    lines = trace_text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        start = START_LINE.match(line)
        if start:
            trace.starts.append((int(start.group(1)), int(start.group(2)), start.group(3)))
            continue
        traced = TRACE_LINE.match(line)
        if traced is None:
            continue
        expanded = traced.group(3)[:MAX_EXPANDED_CHARS]
        extra = 0
        while _unbalanced(expanded) and index < len(lines) and extra < MAX_CONTINUATION_LINES:
            expanded += "\n" + lines[index][:MAX_EXPANDED_CHARS]
            index += 1
            extra += 1
        key = (int(traced.group(1)), traced.group(2)[:MAX_EXPANDED_CHARS], expanded)
        if key in seen:
            continue
        if len(seen) >= MAX_RECORDS:
            trace.cut_short = True
            continue
        seen.add(key)
        trace.records.append(TraceRecord(line=key[0], raw=unquote_bash(key[1]), expanded=expanded))
    return trace


def _unbalanced(text: str) -> bool:
    """Return whether ``text`` has an unclosed single quote, as a trace word spanning lines has."""
    return text.replace("'\\''", "").count("'") % 2 == 1


def unquote_bash(text: str) -> str:
    """Undo bash quoting as ``${var@Q}`` writes it: ``'...'``, ``$'...'`` and backslashes."""
    out: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$'", index):
            index = _ansi_c_quoted(text, index + 2, out)
        elif text[index] == "'":
            end = text.find("'", index + 1)
            end = len(text) if end < 0 else end
            out.append(text[index + 1 : end])
            index = end + 1
        elif text[index] == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _ansi_c_quoted(text: str, index: int, out: list[str]) -> int:
    """Decode a ``$'...'`` string from ``index`` (after the opening quote); return the index after it."""
    while index < len(text) and text[index] != "'":
        if text[index] != "\\" or index + 1 >= len(text):
            out.append(text[index])
            index += 1
            continue
        letter = text[index + 1]
        if letter == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", text[index + 2 :])
            if digits:
                out.append(chr(int(digits.group(), 16)))
                index += 2 + len(digits.group())
                continue
        elif letter in "01234567":
            digits = re.match(r"[0-7]{1,3}", text[index + 1 :])
            assert digits is not None
            out.append(chr(int(digits.group(), 8)))
            index += 1 + len(digits.group())
            continue
        out.append(BASH_ESCAPES.get(letter, letter))
        index += 2
    return index + 1


@dataclass
class TraceContext:
    """Facts about the run that reading a trace needs besides the trace."""

    workdir: str
    host_pid_namespace: str
    own_pid_namespace: bool = False
    """Whether the script ran in a pid namespace of its own; set from the trace's start line."""


def trace_behaviours(trace: Trace, context: TraceContext) -> list[ObservedBehaviour]:
    """Turn every trace record into the behaviours it shows, with ``blocked`` from the error messages."""
    if trace.starts:
        context.own_pid_namespace = (
            bool(trace.starts[0][2]) and trace.starts[0][2] != context.host_pid_namespace
        )
    behaviours: list[ObservedBehaviour] = []
    for record in trace.records:
        found = [
            *_redirection_behaviours(record, trace, context),
            *_expanded_behaviours(record, trace, context),
        ]
        covered = {item.behaviour for item in found}
        failed = _record_failed(record, trace)
        for item in line_rule_matches(record.raw, covered=covered):
            found.append(_observed(item, failed or item.behaviour is Behaviour.NETWORK))
        behaviours.extend(found)
    return behaviours


def _observed(item: Classified, blocked: bool) -> ObservedBehaviour:
    return ObservedBehaviour(
        behaviour=item.behaviour,
        detail=item.detail,
        source="trace",
        blocked=blocked,
        strong=item.strong,
        contained=item.own_copy,
    )


def _record_failed(record: TraceRecord, trace: Trace) -> bool:
    """Return whether bash reported an error on the record's line, or a program on one of its paths.

    Paths are looked for in the line as written too, so that a read inside ``$(...)``,
    ``eval`` or ``bash -c`` is matched with the error of the program that failed it.
    """
    if any(ERRNO_TEXT.search(message) for message in trace.errors.get(record.line, [])):
        return True
    paths = {word for word in split_words(record.expanded) if word.startswith("/")}
    paths.update(ABSOLUTE_PATH.findall(record.raw))
    paths.update(ABSOLUTE_PATH.findall(record.expanded))
    return any(_path_failed(path, _all_errors(trace)) for path in paths)


def _redirection_behaviours(
    record: TraceRecord, trace: Trace, context: TraceContext
) -> list[ObservedBehaviour]:
    """Read what only the unexpanded command shows: connections through /dev/tcp and redirections."""
    errors = trace.errors.get(record.line, [])
    found: list[ObservedBehaviour] = []
    for match in DEV_NET.finditer(record.raw):
        protocol, host, port = match.groups()
        resolved = _resolved_dev_net(errors) or (host, port)
        item = Classified(
            Behaviour.NETWORK, f"connect {resolved[0]}:{resolved[1]} through /dev/{protocol}", True
        )
        found.append(_observed(item, True))
    for operator, target in REDIRECTION.findall(record.raw):
        path = _redirection_path(target.strip("\"'"), errors, context.workdir)
        if path is None:
            continue
        item = classify_file(
            path, write=operator != "<", own_pid_namespace=context.own_pid_namespace
        )
        failed = _path_failed(path, errors) or _path_failed(path, _all_errors(trace))
        found.append(_observed(item, failed or item.contained))
    return found


def _expanded_behaviours(
    record: TraceRecord, trace: Trace, context: TraceContext
) -> list[ObservedBehaviour]:
    """Read what the executed words show: the program, its path arguments and signals."""
    words = _without_assignments(split_words(record.expanded))
    if words and words[0] == "exec":
        words = words[1:]
    if not words:
        return []
    program = os.path.basename(words[0])
    if program == "kill":
        return _kill_behaviours(words[1:], record, trace, context)
    if program in SHELL_BUILTINS:
        return []
    command = _one_line(" ".join(words))
    failed = _record_failed(record, trace)
    # Every line of a script starts a program, so starts of harmless ones are left out.
    found = [
        _observed(item, failed or item.contained)
        for item in classify_command(command, workdir=context.workdir, line_rules=False)
        if item.strong or item.behaviour is not Behaviour.PROCESS
    ]
    if program in NETWORK_TOOLS:
        return found
    all_errors = _all_errors(trace)
    for item, path in _path_arguments(program, words[1:], context):
        found.append(_observed(item, _path_failed(path, all_errors) or item.contained))
    return found


def _kill_behaviours(
    arguments: list[str], record: TraceRecord, trace: Trace, context: TraceContext
) -> list[ObservedBehaviour]:
    number, targets = _parse_kill(arguments)
    if not trace.starts:
        own_pid, parent_pid = -2, -2
    else:
        own_pid, parent_pid, _ = trace.starts[0]
    shells = {start[0] for start in trace.starts}
    separate = context.own_pid_namespace
    errors = " ".join(trace.errors.get(record.line, []))
    found: list[ObservedBehaviour] = []
    for target in targets:
        if target in shells:
            continue
        item = classify_signal(
            target, number, group=target < -1, own_pid=own_pid, parent_pid=parent_pid
        )
        if item is None:
            continue
        rejected = f"({target})" in errors and bool(
            re.search(r"Operation not permitted|No such process", errors)
        )
        found.append(_observed(item, rejected or separate))
    return found


def _parse_kill(arguments: list[str]) -> tuple[int, list[int]]:
    """Return the signal number and target pids of ``kill`` arguments (SIGTERM when none is named).

    A negative number is the signal (``kill -9 PID``) until a signal was named or
    ``--`` was passed; after that it is a process group (``kill -9 -1``).
    """
    number = int(signal.SIGTERM)
    targets: list[int] = []
    signal_named = options_done = False
    words = iter(arguments)
    for word in words:
        if not options_done and word == "--":
            options_done = True
        elif not options_done and word in ("-s", "-n"):
            number, signal_named = _signal_number(next(words, ""), number), True
        elif not options_done and word in ("-l", "-L"):
            return number, []
        elif not options_done and not signal_named and word.startswith("-") and len(word) > 1:
            number, signal_named = _signal_number(word[1:], number), True
        elif re.fullmatch(r"-?\d+", word):
            targets.append(int(word))
    return number, targets


def _signal_number(text: str, default: int) -> int:
    """Return the number of a signal named as ``kill`` accepts it (``9``, ``KILL``, ``SIGKILL``)."""
    text = text.upper().removeprefix("SIG")
    if text.isdigit():
        return int(text)
    try:
        return int(signal.Signals["SIG" + text])
    except KeyError:
        return default


def _without_assignments(words: list[str]) -> list[str]:
    index = 0
    while index < len(words) and re.match(r"^[A-Za-z_]\w*=", words[index]):
        index += 1
    return words[index:]


def _path_arguments(
    program: str, arguments: list[str], context: TraceContext
) -> Iterable[tuple[Classified, str]]:
    """Yield the path arguments outside the working folder, classed by what ``program`` does with them."""
    paths: list[tuple[str, bool]] = []
    for word in arguments:
        key, _, value = word.partition("=")
        if program == "dd" and key in ("if", "of") and value.startswith("/"):
            paths.append((value, key == "of"))
        elif word.startswith("/"):
            paths.append((word, program in WRITERS_ALL or program in REMOVERS))
    if program in WRITERS_LAST and paths:
        paths = [(path, False) for path, _ in paths[:-1]] + [(paths[-1][0], True)]
    for path, write in paths:
        path = os.path.normpath(path)
        if is_within(path, context.workdir) or STREAM_TARGETS.match(path):
            continue
        if program in REMOVERS:
            yield classify_removal(path, "delete"), path
        elif write or not path.startswith(QUIET_ARGUMENTS):
            yield (
                classify_file(path, write=write, own_pid_namespace=context.own_pid_namespace),
                path,
            )


def _redirection_path(target: str, errors: list[str], workdir: str) -> str | None:
    """Return the absolute path of a redirection outside the working folder, or None to skip it."""
    if "$" in target or "`" in target:
        named = [message.rsplit(": ", 1)[0] for message in errors if ERRNO_TEXT.search(message)]
        target = named[0] if len(named) == 1 else target
    if not target or target.startswith("&") or DEV_NET.search(target):
        return None
    path = os.path.normpath(target if target.startswith("/") else os.path.join(workdir, target))
    if STREAM_TARGETS.match(path) or is_within(path, workdir):
        return None
    return path


def _resolved_dev_net(errors: list[str]) -> tuple[str, str] | None:
    for message in errors:
        match = DEV_NET.search(message)
        if match:
            return match.group(2), match.group(3).split(":")[0]
    return None


def _path_failed(path: str, messages: Iterable[str]) -> bool:
    """Return whether an error message names ``path`` with a reason such as "Permission denied"."""
    return any(path in message and ERRNO_TEXT.search(message) for message in messages)


def _all_errors(trace: Trace) -> list[str]:
    """Return the lines of standard error that give a reason for a failure, from any program."""
    return trace.failures


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
