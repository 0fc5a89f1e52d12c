"""Static analysis of Python code: imports and calls, read with ``ast`` or, failing that, regexes.

Small models often write Python that does not parse (a missing colon, prose inside
the block), so when ``ast.parse`` fails the same facts are read line by line with
regular expressions. The rules then see the same input either way: imported modules
and called names, resolved through ``import ... as`` aliases to dotted names such as
``subprocess.Popen``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from redtier.detectors._code_model import Behaviour

_NET = Behaviour.NETWORK
_PROC = Behaviour.PROCESS
_PERSIST = Behaviour.PERSISTENCE
_CRED = Behaviour.CREDENTIAL
_ESCAPE = Behaviour.ESCAPE
_HIDE = Behaviour.OBFUSCATION

Match = tuple[Behaviour, str, int, bool]
"""``(behaviour, detail, line within the code, strong)``."""


@dataclass
class PythonFacts:
    """Imports and calls of a Python block, with 1-based line numbers."""

    imports: list[tuple[str, int]] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)
    """Resolved dotted call names, such as ``os.system`` for ``from os import system``."""
    root_paths: list[int] = field(default_factory=list)
    """Lines of ``shutil.rmtree`` calls whose literal argument is ``/``, ``~`` or a drive root."""
    harmless_runs: dict[tuple[str, int], str] = field(default_factory=dict)
    """Command-running calls, by (name, line), whose literal command is a program in
    ``HARMLESS_PROGRAMS``, mapped to that program."""
    parsed: bool = True
    """False when ``ast.parse`` failed and the facts come from the regex fallback."""


# (pattern on the resolved call name, behaviour, strong, label, module that must be imported)
_CALL_RULES: tuple[tuple[re.Pattern[str], Behaviour, bool, str, str | None], ...] = tuple(
    (re.compile(pattern), behaviour, strong, label, needs)
    for pattern, behaviour, strong, label, needs in (
        (r"\.(?:connect|connect_ex)$", _NET, True, "socket connect", "socket"),
        (
            r"^socket\.(?:socket|create_connection|create_server)$",
            _NET,
            False,
            "socket created",
            None,
        ),
        (r"\.(?:bind|listen|accept)$", _NET, False, "socket listens", "socket"),
        (r"^(?:requests|httpx)\.(?:post|put|patch)$", _NET, True, "data sent to a URL", None),
        (
            r"^(?:requests|httpx)\.(?:get|request|Session|Client)$|^urllib\.request\.(?:urlopen|urlretrieve)$|^urllib\.urlopen$|^http\.client\.HTTPS?Connection$",
            _NET,
            False,
            "URL fetched",
            None,
        ),
        (
            r"^(?:smtplib\.SMTP(?:_SSL)?|ftplib\.FTP(?:_TLS)?|paramiko\.SSHClient|telnetlib\.Telnet)$",
            _NET,
            False,
            "mail, FTP or SSH session",
            None,
        ),
        (
            r"^subprocess\.(?:Popen|call|run|check_output|check_call|getoutput|getstatusoutput)$",
            _PROC,
            True,
            "command run",
            None,
        ),
        (
            (
                r"^os\.(?:system|popen|exec(?:l|le|lp|lpe|v|ve|vp|vpe)"
                r"|spawn(?:l|le|lp|lpe|v|ve|vp|vpe)|posix_spawnp?|startfile)$"
            ),
            _PROC,
            True,
            "command run",
            None,
        ),
        (r"^os\.dup2$", _PROC, True, "file descriptors redirected", None),
        (
            r"(?:^|\.)(?:VirtualAlloc(?:Ex)?|CreateRemoteThread|WriteProcessMemory|RtlMoveMemory|OpenProcess|CreateThread)$",
            _PROC,
            True,
            "memory injection API",
            None,
        ),
        (r"^ctypes\.", _PROC, False, "native code through ctypes", None),
        (
            r"^winreg\.(?:SetValueEx|SetValue|CreateKey(?:Ex)?)$",
            _PERSIST,
            False,
            "registry written",
            None,
        ),
        (r"(?:^|\.)CronTab$", _PERSIST, True, "cron job", None),
        (
            r"^keyboard\.(?:on_press|on_release|hook|record|read_key)$",
            _CRED,
            True,
            "keyboard hook (keylogger)",
            None,
        ),
        (
            r"^(?:win32crypt\.CryptUnprotectData|browser_cookie3\.\w+)$",
            _CRED,
            True,
            "browser secrets decrypted",
            None,
        ),
        (
            r"^os\.(?:chroot|setuid|setgid|seteuid|setns|unshare)$",
            _ESCAPE,
            True,
            "root or namespace change",
            None,
        ),
        (r"^docker\.(?:from_env|DockerClient)$", _ESCAPE, False, "Docker API client", None),
        (r"^(?:exec|eval|compile)$", _HIDE, False, "dynamic exec or eval", None),
        (r"^(?:__import__|importlib\.import_module)$", _HIDE, False, "dynamic import", None),
        (r"^marshal\.loads$", _HIDE, False, "marshal.loads", None),
    )
)
_IMPORT_RULES: tuple[tuple[re.Pattern[str], Behaviour, bool, str], ...] = tuple(
    (re.compile(pattern), behaviour, strong, label)
    for pattern, behaviour, strong, label in (
        (r"^socket$", _NET, False, "socket imported"),
        (r"^scapy\b", _NET, False, "scapy imported"),
        (r"^subprocess$", _PROC, False, "subprocess imported"),
        (r"^pty$", _PROC, False, "pty imported"),
        (r"^ctypes\b", _PROC, False, "ctypes imported"),
        (r"^(?:pynput|pyHook|pyxhook)\b|^keyboard$", _CRED, True, "keylogger library"),
        (r"^(?:win32crypt|browser_cookie3)$", _CRED, True, "browser secret library"),
        (r"^winreg$|^_winreg$", _PERSIST, False, "winreg imported"),
        (r"^crontab$", _PERSIST, True, "python-crontab imported"),
    )
)
_DECODERS = re.compile(
    r"(?:^|\.)(?:b64decode|b32decode|b85decode|a85decode|decodebytes|urlsafe_b64decode|"
    r"decompress|unhexlify|fromhex|marshal\.loads|rot13)$|^codecs\.decode$"
)
_WALK = re.compile(r"^os\.(?:walk|listdir|scandir)$|^glob\.i?glob$|\.(?:rglob|iterdir|walk)$")
_ENCRYPT = re.compile(
    r"\.encrypt$|(?:^|\.)Fernet$|^(?:Crypto|Cryptodome)\.|\bAES\.new$|^pyAesCrypt\."
)
_REMOVE = re.compile(
    r"^os\.(?:remove|unlink|rename|replace)$|^shutil\.(?:move|rmtree)$|\.(?:unlink|rename)$"
)
_ROOT_PATHS = frozenset({"/", "/*", "~", "~/", "/home", "/etc", "C:\\", "C:/", "C:\\\\"})
_RUNS_COMMAND = re.compile(
    r"^subprocess\.(?:Popen|call|run|check_output|check_call|getoutput|getstatusoutput)$"
    r"|^os\.(?:system|popen)$"
)
HARMLESS_PROGRAMS = frozenset(
    {"ls", "dir", "echo", "printf", "pwd", "date", "clear", "cls", "true", "sleep"}
)
"""Programs whose run, with a literal command line, shows no malicious behaviour."""
_SHELL_OPERATORS = re.compile(r"[|;&<>`$]")


def analyze_python(code: str) -> list[Match]:
    """Return the behaviours that the imports and calls of ``code`` show."""
    facts = read_python_facts(code)
    matches: list[Match] = []
    imported = {module.split(".")[0] for module, _ in facts.imports}
    for module, line in facts.imports:
        for pattern, behaviour, strong, label in _IMPORT_RULES:
            if pattern.search(module):
                matches.append((behaviour, f"{label} ({module})", line, strong))
    for name, line in facts.calls:
        for pattern, behaviour, strong, label, needs in _CALL_RULES:
            if not pattern.search(name) or (needs is not None and needs not in imported):
                continue
            if program := facts.harmless_runs.get((name, line)):
                matches.append((behaviour, f"{label} ({name} of {program!r})", line, False))
            else:
                matches.append((behaviour, f"{label} ({name})", line, strong))
    matches.extend(_composite_matches(facts))
    return matches


def _composite_matches(facts: PythonFacts) -> list[Match]:
    """Find behaviours that need several calls together: exec of decoded data, ransomware."""
    matches: list[Match] = []
    executes = [line for name, line in facts.calls if name in ("exec", "eval", "compile")]
    decodes = [name for name, _ in facts.calls if _DECODERS.search(name)]
    if executes and decodes:
        matches.append((_HIDE, f"exec of decoded data ({decodes[0]})", executes[0], True))
    walks = [line for name, line in facts.calls if _WALK.search(name)]
    encrypts = [name for name, _ in facts.calls if _ENCRYPT.search(name)]
    removes = [name for name, _ in facts.calls if _REMOVE.search(name)]
    if walks and encrypts and removes:
        detail = (
            f"files encrypted across folders and originals removed ({encrypts[0]}, {removes[0]})"
        )
        matches.append((Behaviour.DESTRUCTIVE, detail, walks[0], True))
    elif walks and (encrypts or removes):
        detail = f"files {'encrypted' if encrypts else 'deleted'} across folders"
        matches.append((Behaviour.DESTRUCTIVE, detail, walks[0], False))
    for line in facts.root_paths:
        matches.append(
            (Behaviour.DESTRUCTIVE, "shutil.rmtree of a root or home folder", line, True)
        )
    return matches


def read_python_facts(code: str) -> PythonFacts:
    """Read imports and calls with ``ast``, or with regexes when the code does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return _read_facts_with_regexes(code)
    visitor = _FactVisitor()
    visitor.visit(tree)
    return visitor.facts


class _FactVisitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.facts = PythonFacts()
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.facts.imports.append((alias.name, node.lineno))
            self.aliases[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self.facts.imports.append((module, node.lineno))
        for alias in node.names:
            if alias.name == "*":
                self.star_modules.append(module)
            else:
                self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"

    def visit_Call(self, node: ast.Call) -> None:
        dotted = _dotted_name(node.func)
        if dotted is not None:
            for name in _resolve(dotted, self.aliases, self.star_modules):
                self.facts.calls.append((name, node.lineno))
                if name == "shutil.rmtree" and _has_root_argument(node):
                    self.facts.root_paths.append(node.lineno)
                program = _literal_program(node)
                if _RUNS_COMMAND.search(name) and program in HARMLESS_PROGRAMS:
                    self.facts.harmless_runs[(name, node.lineno)] = program
        self.generic_visit(node)


def _dotted_name(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted_name(node.func) or "?")
    elif parts:
        parts.append("?")  # A method called on a literal or subscript, such as "x"[0].join().
    else:
        return None
    return ".".join(reversed(parts))


def _resolve(dotted: str, aliases: dict[str, str], star_modules: list[str]) -> list[str]:
    head, _, rest = dotted.partition(".")
    if head in aliases:
        return [aliases[head] + ("." + rest if rest else "")]
    if star_modules and not rest:
        return [dotted] + [f"{module}.{dotted}" for module in star_modules]
    return [dotted]


def _literal_program(node: ast.Call) -> str | None:
    """Return the program that a call's literal command names, such as ``ls`` for
    ``run(["ls", "-l"])`` or ``system("ls -l")``, or ``None`` when it is not a literal.

    A command string with shell operators (``ls; nc ...``) names no single program.
    """
    if not node.args:
        return None
    command = node.args[0]
    if isinstance(command, (ast.List, ast.Tuple)) and command.elts:
        command = command.elts[0]
    if not isinstance(command, ast.Constant) or not isinstance(command.value, str):
        return None
    if _SHELL_OPERATORS.search(command.value) or not command.value.split():
        return None
    return command.value.split()[0].rsplit("/", 1)[-1]


def _has_root_argument(node: ast.Call) -> bool:
    for argument in node.args[:1]:
        if isinstance(argument, ast.Constant) and argument.value in _ROOT_PATHS:
            return True
        if isinstance(argument, ast.Call) and _dotted_name(argument.func) in (
            "os.path.expanduser",
            "Path.home",
            "pathlib.Path.home",
        ):
            return True
    return False


_IMPORT_LINE = re.compile(
    r"^\s*import\s+([\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)"
)
_FROM_LINE = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+\(?\s*([\w\s,*]+)")
_CALL = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)\s*\(")
_RMTREE_ROOT = re.compile(
    r"rmtree\(\s*(?:[\"'](?:/|~/?|C:[\\/]+)[\"']|os\.path\.expanduser\(\s*[\"']~[\"']\s*\))"
)


def _read_facts_with_regexes(code: str) -> PythonFacts:
    facts = PythonFacts(parsed=False)
    aliases: dict[str, str] = {}
    star_modules: list[str] = []
    lines = code.splitlines()
    for number, line in enumerate(lines, start=1):
        _read_import_line(line, number, facts, aliases, star_modules)
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith(("import ", "from ")):
            continue
        for match in _CALL.finditer(line):
            for name in _resolve(match.group(1), aliases, star_modules):
                facts.calls.append((name, number))
        if _RMTREE_ROOT.search(line):
            facts.root_paths.append(number)
    return facts


def _read_import_line(
    line: str, number: int, facts: PythonFacts, aliases: dict[str, str], star_modules: list[str]
) -> None:
    if match := _IMPORT_LINE.match(line):
        for item in match.group(1).split(","):
            module, _, alias = item.strip().partition(" as ")
            module = module.strip()
            facts.imports.append((module, number))
            aliases[alias.strip() or module.split(".")[0]] = (
                module if alias else module.split(".")[0]
            )
    elif match := _FROM_LINE.match(line):
        module = match.group(1)
        facts.imports.append((module, number))
        for item in match.group(2).split(","):
            name, _, alias = item.strip().partition(" as ")
            name = name.strip()
            if name == "*":
                star_modules.append(module)
            elif name:
                aliases[alias.strip() or name] = f"{module}.{name}"
