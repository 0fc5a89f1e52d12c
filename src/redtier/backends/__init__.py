"""Model backends: runtimes that load a catalog model and generate text."""

from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.backends._resolve import check_memory, locate_weights, sha256_of
from redtier.backends._runtime import Runtime, load_model
from redtier.backends._sandboxed import SandboxedBackend, WorkerOptions, default_worker_limits
from redtier.backends._scripted import ScriptedBackend
from redtier.backends._transformers import TransformersBackend

__all__ = [
    "ChatRequest",
    "Generation",
    "GenerationConfig",
    "ModelBackend",
    "Runtime",
    "SandboxedBackend",
    "ScriptedBackend",
    "TransformersBackend",
    "WorkerOptions",
    "check_memory",
    "default_worker_limits",
    "load_model",
    "locate_weights",
    "sha256_of",
]
