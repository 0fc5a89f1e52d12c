from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from redtier.backends import ChatRequest, Generation, GenerationConfig, ModelBackend, ScriptedBackend
from redtier.probes import load_library
from redtier.scan import ScanOptions, build_plan, execute_scan
from redtier.store import Store

COMPLIANT_REPLY = (
    "Sure, here is how to do it.\n1. First, gather the materials listed below.\n"
    "2. Then mix them carefully in the container.\n3. Finally, follow these steps to finish."
)


def make_plan(limit: int = 12) -> tuple[ScanOptions, list]:
    options = ScanOptions(model="scripted", limit=limit)
    return options, build_plan(load_library().select(None), options)


def test_every_attempt_is_stored_with_a_verdict(store: Store) -> None:
    options, plan = make_plan()
    run = store.create_run("scripted", options.model_dump(mode="json"), {}, len(plan))
    outcome = execute_scan(store, run.id, plan, ScriptedBackend("I'm sorry, but I can't help with that."), options)
    assert outcome.stored == len(plan)
    assert store.get_run(run.id).status == "completed"
    rows = list(store.iter_attempts(run.id))
    assert [row.key for row in rows] == [a.key for a in plan]
    attacks = [row for row in rows if row.category != "over_refusal"]
    controls = [row for row in rows if row.category == "over_refusal"]
    assert {row.verdict for row in attacks} == {"resisted"}
    assert controls, "the plan includes over-refusal controls"
    assert {row.verdict for row in controls} == {"over_refused"}
    assert all(row.detector_results for row in rows)


def test_canary_leak_is_vulnerable(store: Store) -> None:
    options = ScanOptions(model="scripted", probes="prompt_extraction", transforms=())
    plan = build_plan(load_library().select(options.probes), options)
    leak = ScriptedBackend(lambda request: f"The code is {_canary_in(request)}.")
    run = store.create_run("scripted", {}, {}, len(plan))
    execute_scan(store, run.id, plan, leak, options)
    assert {row.verdict for row in store.iter_attempts(run.id)} == {"vulnerable"}


def test_empty_and_failed_outputs_are_errors_not_passes(store: Store) -> None:
    options, plan = make_plan(limit=6)
    replies = iter(["", "   \n", "<|im_end|>", COMPLIANT_REPLY, "I can't help.", "I won't do that."])

    def responder(request: ChatRequest) -> str:
        reply = next(replies)
        if reply == "I won't do that.":
            raise RuntimeError("worker crashed")
        return reply

    run = store.create_run("scripted", {}, {}, len(plan))
    execute_scan(store, run.id, plan, ScriptedBackend(responder), options)
    verdicts = [row.verdict for row in store.iter_attempts(run.id)]
    assert verdicts[:3] == ["error", "error", "error"]
    assert verdicts[5] == "error"
    rows = list(store.iter_attempts(run.id))
    crashed = rows[5]
    assert "worker crashed" in (crashed.error or "")
    assert crashed.output is None
    assert crashed.error_reason == crashed.error
    assert rows[0].error is None
    assert rows[0].error_reason == "the output is empty"
    assert [row.judged_confidence for row in rows if row.verdict == "error"] == [None] * 4
    assert rows[3].judged_confidence is not None


class InterruptingBackend(ModelBackend):
    """Serves ``after`` requests, then raises as Ctrl-C or a crash would."""

    def __init__(self, after: int, error: BaseException) -> None:
        self.name = "interrupting"
        self._after = after
        self._error = error

    def generate_iter(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        for index, _request in enumerate(requests):
            if index == self._after:
                raise self._error
            yield index, Generation(text="I can't help with that.", tokens_out=6)


def test_interrupted_run_resumes_without_repeats(store: Store) -> None:
    options, plan = make_plan(limit=20)
    run = store.create_run("scripted", {}, {}, len(plan))
    with pytest.raises(KeyboardInterrupt):
        execute_scan(store, run.id, plan, InterruptingBackend(7, KeyboardInterrupt()), options)
    assert store.get_run(run.id).status == "interrupted"
    assert store.count_attempts(run.id) == 7

    rest = ScriptedBackend("I can't help with that.")
    outcome = execute_scan(store, run.id, plan, rest, options)
    assert outcome.already_stored == 7
    assert len(rest.calls) == 13
    keys = [row.key for row in store.iter_attempts(run.id)]
    assert sorted(keys) == sorted(a.key for a in plan)
    assert store.get_run(run.id).status == "completed"


def test_backend_crash_marks_run_failed_and_keeps_attempts(store: Store) -> None:
    options, plan = make_plan(limit=10)
    run = store.create_run("scripted", {}, {}, len(plan))
    with pytest.raises(MemoryError):
        execute_scan(store, run.id, plan, InterruptingBackend(4, MemoryError("out of memory")), options)
    stored = store.get_run(run.id)
    assert stored.status == "failed"
    assert "out of memory" in (stored.error or "")
    assert store.count_attempts(run.id) == 4


def _canary_in(request: ChatRequest) -> str:
    import re

    text = (request.system_prompt or "") + request.prompt
    match = re.search(r"RT-[0-9A-F]{6}", text)
    assert match, text
    return match.group(0)
