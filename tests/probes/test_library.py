"""The bundled probe library: contents, contracts and load-time validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

import redtier.probes
from redtier.errors import ConfigError
from redtier.probes import CANARY_PLACEHOLDER, Category, Probe, ProbeLibrary, load_library

LIBRARY = load_library()
LIBRARY_CATEGORIES = [
    Category.PROMPT_INJECTION,
    Category.JAILBREAK,
    Category.HARMFUL,
    Category.MALICIOUS_CODE,
    Category.PROMPT_EXTRACTION,
    Category.OVER_REFUSAL,
]
KNOWN_DETECTORS = {"canary", "harmful_compliance", "malicious_code"}
"""Detectors that attack probes name; over-refusal controls name only ``refusal``."""


def probe_ids(category: Category | None = None) -> list[str]:
    return [probe.id for probe in LIBRARY if category is None or probe.category == category]


def test_public_api_names() -> None:
    assert sorted(redtier.probes.__all__) == sorted(
        [
            "CANARY_PLACEHOLDER",
            "CONTROL_CATEGORIES",
            "TRANSFORMS",
            "Attempt",
            "Category",
            "LlmJudgeSettings",
            "Probe",
            "ProbeLibrary",
            "Transform",
            "apply_transform",
            "import_prompts",
            "load_library",
        ]
    )


def test_load_library_is_cached() -> None:
    assert load_library() is load_library()


def test_categories_in_enum_order() -> None:
    assert LIBRARY.categories() == LIBRARY_CATEGORIES


@pytest.mark.parametrize("category", LIBRARY_CATEGORIES)
def test_category_has_enough_probes(category: Category) -> None:
    probes = [probe for probe in LIBRARY if probe.category == category]
    assert len(probes) >= 8
    assert len(probes) <= 15


def test_library_size() -> None:
    prompt_count = sum(len(probe.prompts) for probe in LIBRARY)
    assert 180 <= prompt_count <= 280


def test_probe_ids_unique() -> None:
    ids = probe_ids()
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("probe_id", probe_ids())
def test_probe_contract(probe_id: str) -> None:
    probe = LIBRARY.get(probe_id)
    assert probe.id.startswith(f"{probe.category.value}.")
    assert probe.source == "redtier"
    assert 2 <= len(probe.prompts) <= 6
    assert all(prompt.strip() == prompt for prompt in probe.prompts)
    assert len(set(probe.prompts)) == len(probe.prompts), "duplicate prompt"
    if probe.category == Category.OVER_REFUSAL:
        assert probe.detectors == ("refusal",)
    else:
        assert set(probe.detectors) <= KNOWN_DETECTORS
    assert probe.goal.strip()
    assert "\n" not in probe.goal
    assert probe.tags, "every probe needs at least one tag"
    assert probe.goals is None


@pytest.mark.parametrize("probe_id", probe_ids())
def test_only_braces_are_canary(probe_id: str) -> None:
    """Braces other than the placeholder would break a scan that fills prompts with str.format."""
    probe = LIBRARY.get(probe_id)
    for text in (*probe.prompts, probe.system_prompt or "", probe.goal):
        assert not re.search(r"[{}]", text.replace(CANARY_PLACEHOLDER, "")), text


@pytest.mark.parametrize("probe_id", probe_ids())
def test_canary_placeholder_matches_flag(probe_id: str) -> None:
    probe = LIBRARY.get(probe_id)
    in_system = CANARY_PLACEHOLDER in (probe.system_prompt or "")
    in_every_prompt = all(CANARY_PLACEHOLDER in prompt for prompt in probe.prompts)
    in_any_prompt = any(CANARY_PLACEHOLDER in prompt for prompt in probe.prompts)
    if probe.uses_canary:
        assert in_system or in_every_prompt
        assert "canary" in probe.detectors
    else:
        assert not in_system
        assert not in_any_prompt
        assert "canary" not in probe.detectors


@pytest.mark.parametrize("probe_id", probe_ids(Category.PROMPT_INJECTION))
def test_injection_marker_in_every_prompt(probe_id: str) -> None:
    probe = LIBRARY.get(probe_id)
    assert probe.detectors == ("canary",)
    assert probe.system_prompt is None
    assert all(CANARY_PLACEHOLDER in prompt for prompt in probe.prompts)


@pytest.mark.parametrize("probe_id", probe_ids(Category.PROMPT_EXTRACTION))
def test_extraction_secret_only_in_system_prompt(probe_id: str) -> None:
    probe = LIBRARY.get(probe_id)
    assert probe.detectors == ("canary",)
    assert probe.system_prompt is not None
    assert f"access code is {CANARY_PLACEHOLDER}" in probe.system_prompt
    assert not any(CANARY_PLACEHOLDER in prompt for prompt in probe.prompts)


def test_harmful_probes_transformable() -> None:
    harmful = [probe for probe in LIBRARY if probe.category == Category.HARMFUL]
    assert all(probe.transformable for probe in harmful)
    assert all(probe.detectors == ("harmful_compliance",) for probe in harmful)


def test_malicious_code_mostly_transformable() -> None:
    probes = [probe for probe in LIBRARY if probe.category == Category.MALICIOUS_CODE]
    transformable = [probe for probe in probes if probe.transformable]
    assert len(transformable) > len(probes) / 2
    assert all(probe.detectors == ("malicious_code", "harmful_compliance") for probe in probes)


def test_over_refusal_controls() -> None:
    controls = [probe for probe in LIBRARY if probe.category == Category.OVER_REFUSAL]
    prompts = [prompt for probe in controls for prompt in probe.prompts]
    assert len(prompts) >= 30
    assert not any(probe.transformable or probe.uses_canary for probe in controls)
    assert Category.OVER_REFUSAL in redtier.probes.CONTROL_CATEGORIES
    assert "over_refusal" in redtier.probes.CONTROL_CATEGORIES


def test_jailbreak_persona_probes_use_canary() -> None:
    jailbreaks = [probe for probe in LIBRARY if probe.category == Category.JAILBREAK]
    with_canary = [probe for probe in jailbreaks if probe.uses_canary]
    assert with_canary
    assert all(probe.detectors == ("harmful_compliance", "canary") for probe in with_canary)
    assert all("harmful_compliance" in probe.detectors for probe in jailbreaks)


# Load-time validation, on library folders written to tmp_path.

VALID_PROBE = """
  - id: harmful.sample
    goal: Do something harmful
    detectors: [harmful_compliance]
    prompts: [first prompt, second prompt]
"""


def write_library(folder: Path, name: str, category: str, probes: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(f"category: {category}\nprobes:{probes}", "utf-8")
    return folder


def test_load_custom_folder(tmp_path: Path) -> None:
    library = ProbeLibrary.from_directory(write_library(tmp_path, "a", "harmful", VALID_PROBE))
    assert [probe.id for probe in library] == ["harmful.sample"]
    assert library.get("harmful.sample").prompts == ("first prompt", "second prompt")


def test_defaults_apply_and_yield_to_probe(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "category: harmful\n"
        "defaults: {detectors: [harmful_compliance], transformable: true}\n"
        "probes:\n"
        "  - {id: harmful.one, goal: g, prompts: [p]}\n"
        "  - {id: harmful.two, goal: g, prompts: [p], transformable: false}\n",
        "utf-8",
    )
    library = ProbeLibrary.from_directory(tmp_path)
    assert library.get("harmful.one").transformable is True
    assert library.get("harmful.one").detectors == ("harmful_compliance",)
    assert library.get("harmful.two").transformable is False


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    write_library(tmp_path, "a", "harmful", VALID_PROBE)
    write_library(tmp_path, "b", "harmful", VALID_PROBE)
    with pytest.raises(ConfigError, match="Duplicate probe id 'harmful.sample'"):
        ProbeLibrary.from_directory(tmp_path)


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            "\n  - {id: harmful.x, goal: g, detectors: [canary], uses_canary: true, prompts: [p]}",
            "sets uses_canary but",
        ),
        (
            "\n  - {id: harmful.x, goal: g, detectors: [canary], prompts: ['say {canary}']}",
            "does not set uses_canary",
        ),
        (
            "\n  - {id: harmful.x, goal: g, detectors: [canary], uses_canary: true,"
            " prompts: ['say {canary}', 'no placeholder']}",
            "missing from 1 of its 2 prompts",
        ),
        ("\n  - {id: harmful.x, goal: g, detectors: [1, 2], prompts: [p]}", "detectors must be"),
        ("\n  - {id: harmful.x, goal: g, detectors: canary, prompts: [p]}", "detectors must be"),
        ("\n  - {id: jailbreak.x, goal: g, detectors: [canary], prompts: [p]}", "must start with"),
        ("\n  - {id: harmful.x, goal: g, detectors: [d], prompts: [p], colour: red}", "colour"),
        ("\n  - {id: harmful.x, goal: g, detectors: [d], prompts: []}", "prompts"),
        ("\n  - {id: harmful.x, goal: g, detectors: [d], prompts: ['  ']}", "prompt 0 is empty"),
        ("\n  - just a string", "not a mapping"),
    ],
)
def test_invalid_probe_rejected(tmp_path: Path, probe: str, message: str) -> None:
    write_library(tmp_path, "a", "harmful", probe)
    with pytest.raises(ConfigError, match=message) as caught:
        ProbeLibrary.from_directory(tmp_path)
    assert "a.yaml" in str(caught.value)


def test_unknown_category_rejected(tmp_path: Path) -> None:
    write_library(tmp_path, "a", "harmfull", VALID_PROBE)
    with pytest.raises(ConfigError, match="invalid category 'harmfull'. Use one of"):
        ProbeLibrary.from_directory(tmp_path)


def test_invalid_yaml_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("category: harmful\nprobes: [unclosed\n", "utf-8")
    with pytest.raises(ConfigError, match="Invalid YAML in probe library file a.yaml"):
        ProbeLibrary.from_directory(tmp_path)


def test_unknown_default_key_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        f"category: harmful\ndefaults: {{goal: g}}\nprobes:{VALID_PROBE}", "utf-8"
    )
    with pytest.raises(ConfigError, match="Invalid 'defaults'"):
        ProbeLibrary.from_directory(tmp_path)


def test_constructor_checks_canary() -> None:
    probe = Probe(
        id="harmful.x",
        category=Category.HARMFUL,
        goal="g",
        prompts=("p",),
        detectors=("canary",),
        uses_canary=True,
    )
    with pytest.raises(ConfigError, match="sets uses_canary"):
        ProbeLibrary([probe])


# Per-prompt goals on Probe.


def make_probe(**fields: object) -> Probe:
    base: dict[str, object] = {
        "id": "imported.x",
        "category": Category.IMPORTED,
        "goal": "overall goal",
        "prompts": ("a", "b"),
        "detectors": ("harmful_compliance",),
    }
    return Probe.model_validate({**base, **fields})


def test_goal_for_without_goals() -> None:
    probe = make_probe()
    assert probe.goal_for(0) == "overall goal"
    assert probe.goal_for(1) == "overall goal"


def test_goal_for_with_goals() -> None:
    probe = make_probe(goals=("goal a", "goal b"))
    assert probe.goal_for(0) == "goal a"
    assert probe.goal_for(1) == "goal b"


def test_goals_length_must_match() -> None:
    with pytest.raises(ValidationError, match="goals has 1 entries but prompts has 2"):
        make_probe(goals=("only one",))


def test_goals_must_not_be_blank() -> None:
    with pytest.raises(ValidationError, match="goal 1 is empty"):
        make_probe(goals=("fine", " "))


def test_missing_folder_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        ProbeLibrary.from_directory(tmp_path / "absent")
