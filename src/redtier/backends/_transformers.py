"""The transformers backend: Hugging Face folders and GGUF files on the CPU.

Requests are tokenized, sorted by length and generated in left-padded
batches, so rows of similar length share a batch and little compute goes to
padding.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.backends._gguf_cache import cached_gguf_folder
from redtier.backends._checks import check_model_files
from redtier.backends._resolve import check_memory, locate_weights, sha256_of
from redtier.catalog import ModelEntry, ModelFormat, Precision
from redtier.errors import ConfigError, ModelLoadError
from redtier.settings import Settings

logger = logging.getLogger(__name__)

MAX_BATCH_TOKENS = 16_384
"""Upper bound on padded prompt tokens in one batch, so a few long prompts do not exhaust memory."""

_TORCH_DTYPES = {Precision.FP32: "float32", Precision.BF16: "bfloat16", Precision.FP16: "float16"}


class TransformersBackend(ModelBackend):
    """A causal language model loaded with transformers."""

    def __init__(self, entry: ModelEntry, model: Any, tokenizer: Any, facts: dict[str, str]):
        self.name = entry.name
        self.entry = entry
        self._model = model
        self._tokenizer = tokenizer
        self._facts = facts

    @classmethod
    def load(
        cls,
        entry: ModelEntry,
        settings: Settings,
        *,
        precision: Precision = Precision.FP32,
        threads: int | None = None,
    ) -> TransformersBackend:
        """Check memory, locate the weights (converting GGUF once), and load them."""
        if precision not in _TORCH_DTYPES:
            raise ConfigError(
                f"Precision {precision.value!r} is not supported by the transformers backend "
                f"on CPU. Use one of: {', '.join(p.value for p in _TORCH_DTYPES)}."
            )
        check_memory(entry, precision)
        weights = locate_weights(entry)
        check_model_files(entry, weights)
        return cls.from_weights(
            entry, weights, sha256_of(weights), settings.cache_dir, precision=precision, threads=threads
        )

    @classmethod
    def from_weights(
        cls,
        entry: ModelEntry,
        weights: Path,
        file_hash: str,
        cache_dir: Path,
        *,
        precision: Precision = Precision.FP32,
        threads: int | None = None,
    ) -> TransformersBackend:
        """Load weights that the caller has located and checked (the model worker's entry point)."""
        started = time.perf_counter()
        folder = weights
        if entry.format is ModelFormat.GGUF:
            folder = cached_gguf_folder(weights, file_hash, cache_dir)
        model, tokenizer = _load_folder(folder, entry, precision, threads)
        facts = _describe(entry, weights, file_hash, precision)
        logger.info("Loaded %s in %.1f s", entry.name, time.perf_counter() - started)
        return cls(entry, model, tokenizer, facts)

    def describe(self) -> dict[str, str]:
        return dict(self._facts)

    def format_prompt(self, request: ChatRequest) -> str:
        """Return the model's input text: the chat template for chat models, else plain text."""
        tokenizer = self._tokenizer
        if self.entry.chat and tokenizer.chat_template:
            messages = []
            if request.system_prompt:
                messages.append({"role": "system", "content": request.system_prompt})
            messages.append({"role": "user", "content": request.prompt})
            return str(
                tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            )
        if request.system_prompt:
            return f"{request.system_prompt}\n\n{request.prompt}\n"
        return f"{request.prompt}\n"

    def generate_iter(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        encoded = [self._encode(request) for request in requests]
        limit = self.entry.context_length - config.max_new_tokens
        servable = []
        for index, ids in enumerate(encoded):
            if len(ids) > limit:
                yield index, Generation(tokens_in=len(ids), error=_too_long(len(ids), config, self.entry))
            else:
                servable.append(index)
        servable.sort(key=lambda index: len(encoded[index]))
        for batch_number, batch in enumerate(_batches(servable, encoded, config.batch_size)):
            yield from self._generate_batch(batch, encoded, config, batch_number)

    def _encode(self, request: ChatRequest) -> list[int]:
        text = self.format_prompt(request)
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generate_batch(
        self,
        batch: list[int],
        encoded: list[list[int]],
        config: GenerationConfig,
        batch_number: int,
    ) -> Iterator[tuple[int, Generation]]:
        import torch

        tokenizer = self._tokenizer
        padded = tokenizer.pad(
            {"input_ids": [encoded[index] for index in batch]}, padding=True, return_tensors="pt"
        )
        options: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id,
            "do_sample": config.temperature > 0,
        }
        if config.temperature > 0:
            options.update(temperature=config.temperature, top_p=config.top_p)
            torch.manual_seed(config.seed + batch_number)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self._model.generate(**padded, **options)
        latency = (time.perf_counter() - started) / len(batch)
        new_tokens = output[:, padded["input_ids"].shape[1] :]
        for row, index in enumerate(batch):
            tokens = _strip_after_eos(new_tokens[row].tolist(), self._stop_ids())
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            yield index, Generation(
                text=text, tokens_in=len(encoded[index]), tokens_out=len(tokens), latency_s=latency
            )

    def _stop_ids(self) -> set[int]:
        ids = self._model.generation_config.eos_token_id
        if isinstance(ids, list):
            stop = set(ids)
        elif ids is not None:
            stop = {ids}
        else:
            stop = set()
        if self._tokenizer.eos_token_id is not None:
            stop.add(self._tokenizer.eos_token_id)
        return stop

    def close(self) -> None:
        self._model = None


def _load_folder(
    folder: Path, entry: ModelEntry, precision: Precision, threads: int | None
) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=entry.trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            dtype=getattr(torch, _TORCH_DTYPES[precision]),
            trust_remote_code=entry.trust_remote_code,
            use_safetensors=True,
        )
    except (ValueError, OSError, KeyError, EOFError, RuntimeError) as error:
        raise ModelLoadError(
            f"Model {entry.name!r} could not be loaded from {str(folder)!r} "
            f"({type(error).__name__}: {error}). Check that the folder is a complete Hugging Face "
            "model with safetensors weights."
        ) from None
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _batches(
    order: list[int], encoded: list[list[int]], batch_size: int
) -> Iterator[list[int]]:
    """Split length-sorted indices into batches of at most ``batch_size`` rows and
    ``MAX_BATCH_TOKENS`` padded tokens."""
    batch: list[int] = []
    for index in order:
        longest = max(len(encoded[index]), *(len(encoded[i]) for i in batch)) if batch else len(encoded[index])
        if batch and (len(batch) >= batch_size or longest * (len(batch) + 1) > MAX_BATCH_TOKENS):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def _strip_after_eos(tokens: list[int], stop_ids: set[int]) -> list[int]:
    for position, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:position]
    return tokens


def _too_long(tokens: int, config: GenerationConfig, entry: ModelEntry) -> str:
    return (
        f"prompt is {tokens} tokens; with max_new_tokens={config.max_new_tokens} it exceeds "
        f"the {entry.context_length}-token context of {entry.name}. Shorten the prompt or "
        "lower --max-new-tokens."
    )


def _describe(entry: ModelEntry, weights: Path, file_hash: str, precision: Precision) -> dict[str, str]:
    import torch
    import transformers

    return {
        "backend": "transformers",
        "model": entry.name,
        "weights": str(weights),
        "weights_sha256": file_hash,
        "precision": precision.value,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": str(torch.get_num_threads()),
    }
