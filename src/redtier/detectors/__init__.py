"""Detectors: judges that score one model output and explain the score.

Every detector implements :class:`Detector` and is registered by name in
:data:`DETECTORS`; :func:`judge` combines their scores into a :class:`Verdict`, and
:func:`judge_many` does the same for a batch, embedding its outputs in one pass.
"""

from redtier.detectors._base import Detector, DetectorResult
from redtier.detectors._batch import judge_many
from redtier.detectors._canary import CanaryDetector
from redtier.detectors._code import MaliciousCodeDetector, analyze_code
from redtier.detectors._code_extract import extract_code_blocks
from redtier.detectors._code_model import Behaviour, CodeBlock, Finding
from redtier.detectors._compliance import HarmfulComplianceDetector
from redtier.detectors._decoded import DecodedPayloadDetector
from redtier.detectors._embedding import EmbeddingModelMissingError
from redtier.detectors._learned import LearnedComplianceDetector, LearnedRefusalDetector
from redtier.detectors._llm_judge import LlmJudgeDetector, LlmJudgeSettings, llm_judge_detector
from redtier.detectors._llm_judge_clients import JudgeError
from redtier.detectors._refusal import RefusalDetector
from redtier.detectors._registry import DETECTORS, DetectorFactory, get_detector, summary_of
from redtier.detectors._verdict import (
    VERDICT_RULE,
    Judgement,
    Verdict,
    decided,
    judge,
    not_judged,
)

__all__ = [
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
