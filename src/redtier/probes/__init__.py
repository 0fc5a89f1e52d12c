"""Attack prompts: the probe library, transforms and importers."""

from redtier.probes._importers import import_prompts
from redtier.probes._library import ProbeLibrary, load_library
from redtier.probes._probe import CANARY_PLACEHOLDER, Attempt, Category, Probe
from redtier.probes._transform_base import Transform
from redtier.probes._transforms import TRANSFORMS, apply_transform

__all__ = [
    "CANARY_PLACEHOLDER",
    "TRANSFORMS",
    "Attempt",
    "Category",
    "Probe",
    "ProbeLibrary",
    "Transform",
    "apply_transform",
    "import_prompts",
    "load_library",
]
