"""Attack prompts: the probe library, transforms and importers."""

from redtier.probes._probe import CANARY_PLACEHOLDER, Attempt, Category, Probe
from redtier.probes._transform_base import Transform

__all__ = ["CANARY_PLACEHOLDER", "Attempt", "Category", "Probe", "Transform"]
