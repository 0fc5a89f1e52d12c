"""Model backends: runtimes that load a catalog model and generate text."""

from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.backends._resolve import check_memory, locate_weights, sha256_of
from redtier.backends._scripted import ScriptedBackend
from redtier.backends._transformers import TransformersBackend

__all__ = [
    "ChatRequest",
    "Generation",
    "GenerationConfig",
    "ModelBackend",
    "ScriptedBackend",
    "TransformersBackend",
    "check_memory",
    "locate_weights",
    "sha256_of",
]
