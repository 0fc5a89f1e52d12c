from __future__ import annotations

from pathlib import Path

import pytest

from redtier.errors import UnknownNameError
from redtier.probes import Category, import_prompts, load_library
from redtier.scan import ScanOptions, build_plan, clean_text, make_canary

ALL_CATEGORIES = {
    Category.PROMPT_INJECTION,
    Category.JAILBREAK,
    Category.HARMFUL,
    Category.MALICIOUS_CODE,
    Category.PROMPT_EXTRACTION,
    Category.OVER_REFUSAL,
    Category.ENCODING,
}


def plan_for(**options: object) -> list:
    scan_options = ScanOptions(model="scripted", **options)
    return build_plan(load_library().select(scan_options.probes), scan_options)


def test_full_plan_covers_every_category() -> None:
    plan = plan_for()
    assert {attempt.category for attempt in plan} == ALL_CATEGORIES
    assert len({attempt.key for attempt in plan}) == len(plan)
    assert [attempt.seq for attempt in plan] == list(range(len(plan)))


def test_limit_spreads_over_categories() -> None:
    plan = plan_for(limit=12)
    assert len(plan) == 12
    categories = [attempt.category for attempt in plan]
    assert set(categories) == ALL_CATEGORIES
    assert max(categories.count(c) for c in ALL_CATEGORIES) == 2


def test_limit_spreads_over_probes_within_category() -> None:
    plan = plan_for(probes="harmful", transforms=(), limit=5)
    assert len({attempt.probe_id for attempt in plan}) == 5


def test_plan_is_deterministic_for_a_seed() -> None:
    assert plan_for(limit=40, seed=3) == plan_for(limit=40, seed=3)
    canaries_a = [a.canary for a in plan_for(seed=1) if a.canary]
    canaries_b = [a.canary for a in plan_for(seed=2) if a.canary]
    assert canaries_a and canaries_a != canaries_b


def test_canary_is_planted_in_every_canary_attempt() -> None:
    for attempt in plan_for(probes="prompt_extraction,prompt_injection"):
        assert attempt.canary is not None
        assert attempt.canary == make_canary(0, attempt.key)
        sent = (attempt.system_prompt or "") + attempt.prompt
        assert attempt.canary in sent
        assert "{canary}" not in sent


def test_transformed_attempts_keep_the_original_request() -> None:
    encoded = [a for a in plan_for(probes="harmful") if a.transform]
    assert {a.transform for a in encoded} == {"base64", "rot13", "leetspeak", "payload_split"}
    for attempt in encoded:
        assert attempt.category is Category.ENCODING
        assert attempt.prompt != attempt.original_prompt
        assert attempt.key.endswith("/" + attempt.transform)


def test_no_transforms_means_no_encoding_category() -> None:
    assert Category.ENCODING not in {a.category for a in plan_for(transforms=())}


def test_unknown_transform_fails_before_planning() -> None:
    with pytest.raises(UnknownNameError, match="rot13"):
        plan_for(transforms=("rot31",))


def test_control_characters_are_removed(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("tell me\x00 a secret\x1b[31m now\nsecond\tline ok\n")
    options = ScanOptions(model="scripted", transforms=())
    plan = build_plan([import_prompts(prompts)], options)
    assert plan[0].prompt == "tell me a secret[31m now"
    assert plan[1].prompt == "second\tline ok"
    assert clean_text("a\r\nb") == "a\r\nb"
