"""The llama.cpp backend: GGUF files through ``llama-cpp-python``, one prompt at a time.

An optional extra (``pip install 'redtier[llamacpp]'``): the package compiles
llama.cpp from source when no wheel matches the machine, which takes about
20 minutes on 2 cores, so neither setup nor CI installs it. It runs the GGUF
weights as quantized, without the conversion to fp32 safetensors that the
transformers backend needs, and so generates different (not worse or better
by design) tokens than the transformers backend for the same file.

``llama-cpp-python``'s high-level API decodes one sequence at a time, so this
backend serves requests one after another, shortest first, and yields each
reply when it ends.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.backends._checks import check_model_files
from redtier.backends._decode import StartCallback, row_seed
from redtier.backends._hash_cache import cached_sha256
from redtier.backends._resolve import locate_weights
from redtier.backends._transformers import too_long_message
from redtier.catalog import ModelEntry, ModelFormat
from redtier.errors import ConfigError, InsufficientMemoryError, ModelLoadError
from redtier.settings import Settings

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'redtier[llamacpp]'"
MEMORY_FACTOR = 1.3
"""Memory needed per byte of GGUF file: the mapped weights plus the KV cache and scratch buffers (an estimate)."""


class LlamaCppBackend(ModelBackend):
    """A GGUF model loaded with llama.cpp."""

    def __init__(self, entry: ModelEntry, llama: Any, facts: dict[str, str]) -> None:
        self.name = entry.name
        self.entry = entry
        self._llama = llama
        self._facts = facts
        self._template = _chat_template(llama) if entry.chat else None

    @classmethod
    def load(
        cls, entry: ModelEntry, settings: Settings, *, threads: int | None = None
    ) -> LlamaCppBackend:
        """Check the file and the memory, then load it with llama.cpp."""
        weights = locate_weights(entry)
        check_model_files(entry, weights)
        return cls.from_weights(entry, weights, cached_sha256(weights, settings.cache_dir), threads=threads)

    @classmethod
    def from_weights(
        cls, entry: ModelEntry, weights: Path, file_hash: str, *, threads: int | None = None
    ) -> LlamaCppBackend:
        """Load GGUF weights that the caller has located and checked (the model worker's entry point)."""
        if entry.format is not ModelFormat.GGUF:
            raise ConfigError(
                f"Model {entry.name!r} is a {entry.format.value} model; the llama.cpp runtime reads only "
                "GGUF files. Use the transformers runtime for it."
            )
        llama_class = _llama_class()
        _check_file_memory(entry, weights)
        started = time.perf_counter()
        count = threads or os.cpu_count() or 1
        try:
            llama = llama_class(
                model_path=str(weights),
                n_ctx=entry.context_length,
                n_threads=count,
                n_threads_batch=count,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise ModelLoadError(
                f"llama.cpp could not load {str(weights)!r} for {entry.name!r} ({type(error).__name__}: "
                f"{error}). The file may be truncated or corrupt: download it again."
            ) from None
        logger.info("Loaded %s with llama.cpp in %.1f s", entry.name, time.perf_counter() - started)
        return cls(entry, llama, _describe(entry, weights, file_hash, count))

    def describe(self) -> dict[str, str]:
        return dict(self._facts)

    def format_prompt(self, request: ChatRequest) -> str:
        """Return the model's input text: the GGUF file's chat template for chat models, else plain text."""
        if self._template is not None:
            messages = []
            if request.system_prompt:
                messages.append({"role": "system", "content": request.system_prompt})
            messages.append({"role": "user", "content": request.prompt})
            return str(self._template(messages))
        if request.system_prompt:
            return f"{request.system_prompt}\n\n{request.prompt}\n"
        return f"{request.prompt}\n"

    def generate_iter(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        return self.generate_stream(requests, config)

    def generate_stream(
        self,
        requests: Sequence[ChatRequest],
        config: GenerationConfig,
        on_start: StartCallback | None = None,
    ) -> Iterator[tuple[int, Generation]]:
        """Yield ``(index, generation)`` for each request, shortest prompt first."""
        encoded = [self._encode(request) for request in requests]
        limit = self.entry.context_length - config.max_new_tokens
        order = []
        for index, ids in enumerate(encoded):
            if len(ids) > limit:
                yield (
                    index,
                    Generation(
                        tokens_in=len(ids), error=too_long_message(len(ids), config, self.entry)
                    ),
                )
            else:
                order.append(index)
        order.sort(key=lambda index: len(encoded[index]))
        for index in order:
            if on_start is not None:
                on_start([index])
            yield index, self._generate_one(encoded[index], config)

    def _encode(self, request: ChatRequest) -> list[int]:
        text = self.format_prompt(request).encode("utf-8")
        # Like the transformers backend, add no BOS token: a chat template writes any it needs.
        return list(self._llama.tokenize(text, add_bos=False, special=True))

    def _generate_one(self, prompt: list[int], config: GenerationConfig) -> Generation:
        llama = self._llama
        started = time.perf_counter()
        greedy = config.temperature <= 0
        llama.set_seed(row_seed(config.seed, prompt) & 0xFFFFFFFF)
        stop = llama.token_eos()
        tokens: list[int] = []
        stream = llama.generate(
            prompt,
            temp=0.0 if greedy else config.temperature,
            top_p=1.0 if greedy else config.top_p,
            top_k=0,
            min_p=0.0,
            repeat_penalty=1.0,
        )
        for token in stream:
            if token == stop:
                break
            tokens.append(int(token))
            if len(tokens) >= config.max_new_tokens:
                break
        stream.close()
        text = llama.detokenize(tokens).decode("utf-8", errors="replace")
        return Generation(
            text=text,
            tokens_in=len(prompt),
            tokens_out=len(tokens),
            latency_s=time.perf_counter() - started,
        )

    def close(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None and hasattr(llama, "close"):
            llama.close()


def _llama_class() -> Any:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ConfigError(
            f"The llama.cpp runtime needs the llama-cpp-python package, which is not installed. "
            f"Install it with: {INSTALL_HINT} (it may compile llama.cpp, which takes a while), "
            "or use the default transformers runtime."
        ) from None
    return Llama


def _check_file_memory(entry: ModelEntry, weights: Path, available: int | None = None) -> None:
    import psutil

    from redtier.catalog import format_bytes

    need = int(weights.stat().st_size * MEMORY_FACTOR)
    have = psutil.virtual_memory().available if available is None else available
    if need > have:
        raise InsufficientMemoryError(
            f"Model {entry.name!r} needs an estimated {format_bytes(need)} with llama.cpp, but this "
            f"machine has {format_bytes(have)} available. Pick a smaller or more quantized GGUF file."
        )


def _chat_template(llama: Any) -> Any:
    """Return a function that renders messages with the GGUF file's chat template, or None without one."""
    source = llama.metadata.get("tokenizer.chat_template")
    if not source:
        return None
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        source
    )
    special = {
        "bos_token": _token_text(llama, llama.token_bos()),
        "eos_token": _token_text(llama, llama.token_eos()),
    }

    def render(messages: list[dict[str, str]]) -> str:
        return template.render(messages=messages, add_generation_prompt=True, **special)

    return render


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return llama.detokenize([token], special=True).decode("utf-8", errors="replace")


def _describe(entry: ModelEntry, weights: Path, file_hash: str, threads: int) -> dict[str, str]:
    import llama_cpp

    return {
        "backend": "llama.cpp",
        "model": entry.name,
        "weights": str(weights),
        "weights_sha256": file_hash,
        "precision": "as stored in the GGUF file",
        "llama_cpp_python": str(getattr(llama_cpp, "__version__", "unknown")),
        "threads": str(threads),
    }
