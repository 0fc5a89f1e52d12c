"""The detector registry: detector factories by name."""

from __future__ import annotations

import functools
from collections.abc import Callable

from redtier.detectors._base import Detector
from redtier.detectors._canary import CanaryDetector
from redtier.detectors._code import MaliciousCodeDetector
from redtier.detectors._compliance import HarmfulComplianceDetector
from redtier.detectors._decoded import DecodedPayloadDetector
from redtier.detectors._learned import LearnedComplianceDetector, LearnedRefusalDetector
from redtier.detectors._llm_judge import default_llm_judge
from redtier.detectors._refusal import RefusalDetector
from redtier.registry import Registry

DetectorFactory = Callable[[], Detector]
"""Builds a detector. A factory rather than an instance, so that a detector with a
model to load (a trained classifier) loads it only when first asked for."""

DETECTORS: Registry[DetectorFactory] = Registry("detector")
# The defaults are the trained ensembles; the rule detectors they build on stay
# available under their own names.
DETECTORS.add("refusal", LearnedRefusalDetector)
DETECTORS.add("harmful_compliance", LearnedComplianceDetector)
DETECTORS.add("refusal_keywords", RefusalDetector)
DETECTORS.add("harmful_compliance_rules", HarmfulComplianceDetector)
DETECTORS.add("malicious_code", MaliciousCodeDetector)
DETECTORS.add("canary", CanaryDetector)
DETECTORS.add("decoded_payload", DecodedPayloadDetector)
# The bundled model as judge. Scans and `redtier judge` build judges with other
# models from LlmJudgeSettings (see redtier.detectors._llm_judge).
DETECTORS.add("llm_judge", default_llm_judge)


SUMMARIES = {
    "refusal": "how clearly the model declined, fully or partly (trained classifier)",
    "harmful_compliance": "whether the output delivers what the goal asked for, even after an "
    "\"I can't, but...\" (trained classifier)",
    "refusal_keywords": "how clearly the model declined, by refusal phrases and their position",
    "harmful_compliance_rules": "whether the output delivers the goal, by structure, overlap with "
    "the goal and refusal phrases",
    "malicious_code": "network, process, persistence, credential, escape, destructive and "
    "obfuscation behaviour in code blocks",
    "canary": "a planted secret or injected marker in the output, also reversed, spaced out or "
    "encoded",
    "decoded_payload": "compliance in a reply written in the prompt's encoding (base64, ROT13, "
    "leetspeak)",
    "llm_judge": "how much of the goal the reply delivers, as a judge model grades it against a "
    "rubric",
}
"""One line per built-in detector on what it scores, for `redtier detectors`."""


def summary_of(name: str) -> str:
    """Return what detector ``name`` scores, from ``SUMMARIES`` or its factory's docstring."""
    if name in SUMMARIES:
        return SUMMARIES[name]
    doc = (DETECTORS.get(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


@functools.cache
def get_detector(name: str) -> Detector:
    """Return the detector registered as ``name``, built once and then shared.

    Sharing is safe because detectors keep no state between outputs.
    Raises ``UnknownNameError`` with the closest names when ``name`` is not registered.
    """
    return DETECTORS.get(name)()
