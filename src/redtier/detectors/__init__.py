"""Detectors: judges that score one model output and explain the score."""

from redtier.detectors._base import Detector, DetectorResult

__all__ = ["Detector", "DetectorResult"]
