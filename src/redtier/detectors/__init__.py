"""Detectors: judges that score one model output and explain the score.

Every detector implements :class:`Detector` and is registered by name in
:data:`DETECTORS`; :func:`judge` combines their scores into a :class:`Verdict`.
"""

from redtier.detectors._base import Detector, DetectorResult
from redtier.detectors._canary import CanaryDetector
from redtier.detectors._code import MaliciousCodeDetector, analyze_code
from redtier.detectors._code_extract import extract_code_blocks
from redtier.detectors._code_model import Behaviour, CodeBlock, Finding
from redtier.detectors._compliance import HarmfulComplianceDetector
from redtier.detectors._decoded import DecodedPayloadDetector
from redtier.detectors._refusal import RefusalDetector
from redtier.detectors._registry import DETECTORS, DetectorFactory, get_detector
from redtier.detectors._verdict import VERDICT_RULE, Judgement, Verdict, judge

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
    "Finding",
    "HarmfulComplianceDetector",
    "Judgement",
    "MaliciousCodeDetector",
    "RefusalDetector",
    "Verdict",
    "analyze_code",
    "extract_code_blocks",
    "get_detector",
    "judge",
]
