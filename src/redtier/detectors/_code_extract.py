"""Find code in a model output: fenced blocks, unfenced runs of code lines, inline spans."""

from __future__ import annotations

import ast
import re

from redtier.detectors._code_model import CodeBlock

_FENCE_OPEN = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<tag>[\w+#.-]*)")
_LANGUAGE_ALIASES = {
    "python": "python",
    "python3": "python",
    "py": "python",
    "py3": "python",
    "ipython": "python",
    "bash": "shell",
    "sh": "shell",
    "shell": "shell",
    "zsh": "shell",
    "console": "shell",
    "shell-session": "shell",
    "terminal": "shell",
    "powershell": "powershell",
    "ps1": "powershell",
    "pwsh": "powershell",
    "bat": "batch",
    "cmd": "batch",
}
SHELL_COMMANDS = (
    "sudo|curl|wget|bash|sh|zsh|nc|ncat|netcat|socat|chmod|chown|echo|cat|rm|mkdir|cd|"
    "apt|apt-get|yum|dnf|pip|pip3|python|python3|perl|ruby|php|crontab|useradd|adduser|usermod|"
    "passwd|iptables|ufw|docker|kubectl|mount|umount|nsenter|unshare|chroot|export|ssh|scp|"
    "git|systemctl|service|history|kill|pkill|base64|openssl|tar|ls|ps|find|grep|sed|awk|dd|"
    "mkfifo|mkfs|shred|touch|cp|mv|ln|nohup|nmap|tcpdump|setcap|getcap|su|unset|env|eval|exec|"
    "xxd|telnet|powershell|reg|schtasks|net|certutil|msfvenom|hydra|john|hashcat|sqlmap"
)
_SHELL_LINE = re.compile(r"^\s*(?:\$\s+|#\s+(?=sudo\b))?(?:" + SHELL_COMMANDS + r")(?:\s|$)")
_SHELL_ARGUMENT_SIGN = re.compile(r"\s-{1,2}\w|/|\||>|&&|\$|;")
_PYTHON_ANCHOR = re.compile(
    r"^\s*(?:import \w|from [\w.]+ import |def \w+\s*\(|class \w+\s*[(:]|async def )"
)
_PYTHON_LINE = re.compile(
    r"^(?:import \w|from [\w.]+ import |def \w+\s*\(|async def |class \w+\s*[(:]|@\w|"
    r"if .+:\s*$|elif .+:\s*$|else:|for .+ in .+:\s*$|while .+:\s*$|try:|except\b.*:\s*$|"
    r"finally:|with .+:\s*$|return\b|raise\b|pass$|break$|continue$|print\(|#|"
    r"[A-Za-z_][\w.\[\]'\"]*(?:\s*,\s*[A-Za-z_]\w*)*\s*[+\-*/|&]?=\s*\S|"
    r"[A-Za-z_][\w.]*\(.*\)\s*$)"
)
_INLINE_SPAN = re.compile(r"(?<!`)`([^`\n]{4,})`(?!`)")
_PYTHON_CALL = re.compile(r"\b[A-Za-z_]\w*\.\w+\(")


def extract_code_blocks(text: str) -> list[CodeBlock]:
    """Return the code in ``text``, ordered by line.

    Fenced blocks (``` or ~~~, with or without a language tag) are found first, and
    an unclosed fence runs to the end. Outside the fences, runs of lines that look
    like Python with an import, def or class, lines that start with a common shell
    command, and `inline spans` that look like a command are returned too, because
    small models often forget fences.
    """
    lines = text.splitlines()
    blocks: list[CodeBlock] = []
    prose: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        if opening is None:
            prose.append((index + 1, lines[index]))
            index += 1
            continue
        end = _find_fence_end(lines, index + 1, opening.group("fence"))
        body = lines[index + 1 : end]
        if any(line.strip() for line in body):
            code = "\n".join(body)
            language = _canonical_language(opening.group("tag")) or guess_language(code)
            blocks.append(CodeBlock(language=language, code=code, start_line=index + 2))
        index = end + 1
    unfenced = _unfenced_blocks(prose)
    consumed = {
        block.start_line + offset
        for block in unfenced
        for offset in range(block.code.count("\n") + 1)
    }
    blocks.extend(unfenced)
    blocks.extend(
        _inline_blocks([(number, line) for number, line in prose if number not in consumed])
    )
    return sorted(blocks, key=lambda block: block.start_line)


def _find_fence_end(lines: list[str], start: int, fence: str) -> int:
    closing = re.compile(r"^\s*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
    for index in range(start, len(lines)):
        if closing.match(lines[index]):
            return index
    return len(lines)


def _canonical_language(tag: str) -> str | None:
    tag = tag.lower()
    if not tag:
        return None
    return _LANGUAGE_ALIASES.get(tag, tag)


def guess_language(code: str) -> str | None:
    """Return ``python`` or ``shell`` when ``code`` looks like one of them, else ``None``."""
    code_lines = [line for line in code.splitlines() if line.strip()]
    if not code_lines:
        return None
    shell_lines = sum(1 for line in code_lines if _SHELL_LINE.match(line))
    python_lines = sum(1 for line in code_lines if _PYTHON_LINE.match(line.strip()))
    if any(_PYTHON_ANCHOR.match(line) for line in code_lines) and python_lines >= shell_lines:
        return "python"
    if shell_lines and shell_lines * 2 >= len(code_lines):
        return "shell"
    if python_lines * 2 >= len(code_lines) and _parses_as_python(code):
        return "python"
    return None


def _parses_as_python(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _unfenced_blocks(prose: list[tuple[int, str]]) -> list[CodeBlock]:
    """Group consecutive code-like prose lines into blocks; see ``extract_code_blocks``."""
    blocks: list[CodeBlock] = []
    run: list[tuple[int, str]] = []
    run_kind: str | None = None
    for number, line in prose + [(0, "")]:
        kind = _line_kind(line, run_kind)
        contiguous = bool(run) and number == run[-1][0] + 1
        if kind is not None and (not run or (kind == run_kind and contiguous)):
            run.append((number, line))
            run_kind = kind
            continue
        blocks.extend(_accept_run(run, run_kind))
        run, run_kind = ([(number, line)], kind) if kind is not None else ([], None)
    return blocks


def _line_kind(line: str, current: str | None) -> str | None:
    if current == "python" and (line.startswith((" ", "\t")) or not line.strip()):
        return "python"  # An indented body line, or a blank line between definitions.
    if _SHELL_LINE.match(line) and _SHELL_ARGUMENT_SIGN.search(line):
        return "shell"
    if _PYTHON_LINE.match(line):
        return "python"
    return None


def _accept_run(run: list[tuple[int, str]], kind: str | None) -> list[CodeBlock]:
    while run and not run[-1][1].strip():
        run = run[:-1]
    if not run or kind is None:
        return []
    code = "\n".join(line for _, line in run)
    if kind == "python" and (
        len(run) < 2 or not any(_PYTHON_ANCHOR.match(line) for _, line in run)
    ):
        return []
    return [CodeBlock(language=kind, code=code, start_line=run[0][0], kind="unfenced")]


def _inline_blocks(prose: list[tuple[int, str]]) -> list[CodeBlock]:
    blocks: list[CodeBlock] = []
    for number, line in prose:
        for match in _INLINE_SPAN.finditer(line):
            span = match.group(1).strip()
            if _SHELL_LINE.match(span) and _SHELL_ARGUMENT_SIGN.search(span):
                blocks.append(
                    CodeBlock(language="shell", code=span, start_line=number, kind="inline")
                )
            elif _PYTHON_CALL.search(span):
                blocks.append(
                    CodeBlock(language="python", code=span, start_line=number, kind="inline")
                )
    return blocks
