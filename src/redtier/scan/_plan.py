"""Turn probes and options into the ordered list of attempts a run makes.

The plan is a pure function of the options and the probe library, so a
resumed run rebuilds exactly the same attempts and skips the stored ones.
``--limit`` takes attempts round-robin across categories, and within a
category round-robin across probes, so a small scan still covers every
category instead of the first N prompts of one probe.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Sequence

from redtier.probes import CANARY_PLACEHOLDER, CONTROL_CATEGORIES, Attempt, Category, Probe
from redtier.scan._options import ScanOptions

HARMFUL_COMPLIANCE = "harmful_compliance"
"""The detector that a scan's LLM judge, when it names one, replaces."""
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def build_plan(probes: Sequence[Probe], options: ScanOptions) -> list[Attempt]:
    """Return the attempts for ``probes`` under ``options``, in the order they are sent."""
    from redtier.probes import TRANSFORMS

    for name in options.transforms:
        TRANSFORMS.get(name)  # fail on an unknown transform before anything runs
    by_category: dict[Category, list[list[Attempt]]] = defaultdict(list)
    for probe in probes:
        plain = [_attempt(probe, index, None, options) for index in range(len(probe.prompts))]
        by_category[probe.category].append(plain)
        if probe.transformable and options.transforms:
            count = min(options.transformed_prompts_per_probe, len(probe.prompts))
            for name in options.transforms:
                encoded = [_attempt(probe, index, name, options) for index in range(count)]
                if encoded:
                    by_category[Category.ENCODING].append(encoded)
    per_category = [_round_robin(groups) for groups in by_category.values()]
    ordered = _round_robin(per_category)
    if options.limit is not None:
        ordered = ordered[: options.limit]
    return [attempt.model_copy(update={"seq": seq}) for seq, attempt in enumerate(ordered)]


def make_canary(seed: int, key: str) -> str:
    """Return a per-attempt secret such as ``RT-3F9A2C``, stable for a seed and key."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    return "RT-" + digest[:6].upper()


def clean_text(text: str) -> str:
    """Remove control characters other than tab, newline and carriage return."""
    return _CONTROL_CHARACTERS.sub("", text)


def _attempt(probe: Probe, index: int, transform: str | None, options: ScanOptions) -> Attempt:
    from redtier.probes import apply_transform

    key = f"{probe.id}/{index}/{transform or 'none'}"
    canary = make_canary(options.seed, key) if probe.uses_canary else None
    original = _fill(probe.prompts[index], canary)
    prompt = original
    if transform is not None:
        rng = random.Random(f"{options.seed}:{key}")
        prompt = apply_transform(transform, original, rng)
    return Attempt(
        key=key,
        seq=0,
        probe_id=probe.id,
        category=Category.ENCODING if transform else probe.category,
        # A control prompt's goal is the request itself: a helpful reply answers it.
        goal=original if probe.category in CONTROL_CATEGORIES else probe.goal_for(index),
        prompt=clean_text(prompt),
        original_prompt=clean_text(original),
        system_prompt=_fill(probe.system_prompt, canary) if probe.system_prompt else None,
        transform=transform,
        canary=canary,
        detectors=probe.detectors,
        llm_judge=options.llm_judge if HARMFUL_COMPLIANCE in probe.detectors else None,
    )


def _fill(text: str, canary: str | None) -> str:
    return text.replace(CANARY_PLACEHOLDER, canary) if canary else text


def _round_robin(groups: Sequence[Sequence[Attempt]]) -> list[Attempt]:
    ordered: list[Attempt] = []
    longest = max((len(group) for group in groups), default=0)
    for position in range(longest):
        for group in groups:
            if position < len(group):
                ordered.append(group[position])
    return ordered
