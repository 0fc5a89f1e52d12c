"""Attack prompts: the probe library, transforms and importers."""

from redtier.probes._importers import import_prompts
from redtier.probes._judge_settings import LlmJudgeSettings
from redtier.probes._library import ProbeLibrary, load_library
from redtier.probes._probe import CANARY_PLACEHOLDER, CONTROL_CATEGORIES, Attempt, Category, Probe
from redtier.probes._transform_base import Transform
from redtier.probes._transforms import TRANSFORMS, apply_transform

__all__ = [
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
