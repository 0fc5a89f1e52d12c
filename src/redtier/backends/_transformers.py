"""The transformers backend: Hugging Face folders and GGUF files on the CPU.

Requests are tokenized and generated with continuous batching
(:mod:`redtier.backends._decode`): shortest prompts first, each reply handed
over the step it ends, and its place in the batch given to the next prompt.
Models whose cache layout the decoder does not handle (sliding-window or
linear attention, encoder-decoder) fall back to left-padded static batches
through ``model.generate``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.backends._checks import check_model_files
from redtier.backends._decode import SlotDecoder, StartCallback, supports_slot_decoding
from redtier.backends._gguf_cache import cached_gguf_folder
from redtier.backends._hash_cache import cached_sha256
from redtier.backends._resolve import check_memory, locate_weights
from redtier.catalog import ModelEntry, ModelFormat, Precision
from redtier.errors import ConfigError, ModelLoadError
from redtier.settings import Settings

logger = logging.getLogger(__name__)

MAX_BATCH_TOKENS = 16_384
"""Upper bound on padded prompt tokens in one static batch (the ``model.generate`` fallback)."""

PLAIN_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
"""``tokenizer_class`` values whose tokenizer is ``tokenizer.json`` alone, without class code."""

_TORCH_DTYPES = {Precision.FP32: "float32", Precision.BF16: "bfloat16", Precision.FP16: "float16"}


class TransformersBackend(ModelBackend):
    """A causal language model loaded with transformers."""

    def __init__(self, entry: ModelEntry, model: Any, tokenizer: Any, facts: dict[str, str]):
        self.name = entry.name
        self.entry = entry
        self._model = model
        self._tokenizer = tokenizer
        self._facts = facts
        self._static_reason = supports_slot_decoding(model)
        if self._static_reason is not None:
            logger.info(
                "%s generates in static batches through model.generate, because %s.",
                entry.name,
                self._static_reason,
            )

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
            entry,
            weights,
            cached_sha256(weights, settings.cache_dir),
            settings.cache_dir,
            precision=precision,
            threads=threads,
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
        with _transformers_progress_bars_disabled():
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
        return self.generate_stream(requests, config)

    def generate_stream(
        self,
        requests: Sequence[ChatRequest],
        config: GenerationConfig,
        on_start: StartCallback | None = None,
    ) -> Iterator[tuple[int, Generation]]:
        """Yield ``(index, generation)`` as each reply ends, calling ``on_start`` as rows start.

        Requests too long for the context are yielded first, as errors, and
        never reach ``on_start``.
        """
        encoded = [self._encode(request) for request in requests]
        limit = self.entry.context_length - config.max_new_tokens
        servable = []
        for index, ids in enumerate(encoded):
            if len(ids) > limit:
                error = too_long_message(len(ids), config, self.entry)
                yield index, Generation(tokens_in=len(ids), error=error)
            else:
                servable.append(index)
        if self._static_reason is None:
            yield from self._generate_continuous(servable, encoded, config, on_start)
            return
        servable.sort(key=lambda index: len(encoded[index]))
        for batch_number, batch in enumerate(_batches(servable, encoded, config.batch_size)):
            if on_start is not None:
                on_start(batch)
            yield from self._generate_batch(batch, encoded, config, batch_number)

    def _generate_continuous(
        self,
        servable: list[int],
        encoded: list[list[int]],
        config: GenerationConfig,
        on_start: StartCallback | None,
    ) -> Iterator[tuple[int, Generation]]:
        decoder = SlotDecoder(
            self._model, config, stop_ids=self._stop_ids(), pad_id=self._tokenizer.pad_token_id
        )
        for finished in decoder.run([(index, encoded[index]) for index in servable], on_start):
            text = self._tokenizer.decode(finished.tokens, skip_special_tokens=True)
            yield finished.index, Generation(
                text=text,
                tokens_in=len(encoded[finished.index]),
                tokens_out=len(finished.tokens),
                latency_s=finished.compute_s,
            )

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


@contextmanager
def _transformers_progress_bars_disabled() -> Iterator[None]:
    """Hide transformers' own bars, such as "Loading weights", while a model loads.

    With ``--sandbox none`` they would print under redtier's progress display.
    They are enabled again afterwards if they were on, because transformers'
    switch also turns off huggingface_hub's download bars.

    NOTE: the "Converting and de-quantizing GGUF tensors" bar of a first GGUF
    conversion still shows, because transformers 5.25 draws it with tqdm directly.
    """
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def _load_folder(
    folder: Path, entry: ModelEntry, precision: Precision, threads: int | None
) -> tuple[Any, Any]:
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        tokenizer = load_tokenizer(folder, entry)
        model = load_weights(folder, entry, getattr(torch, _TORCH_DTYPES[precision]))
    except (ValueError, OSError, KeyError, EOFError, RuntimeError) as error:
        raise ModelLoadError(
            f"Model {entry.name!r} could not be loaded from {str(folder)!r} "
            f"({type(error).__name__}: {error}). Check that the folder is a complete Hugging Face "
            "model with safetensors weights."
        ) from None
    return model, tokenizer


def load_tokenizer(folder: Path, entry: ModelEntry) -> Any:
    """Load the tokenizer of a model folder, set up for left padding.

    A folder whose tokenizer is a plain ``tokenizer.json`` (GGUF conversions
    among them) loads it directly, skipping ``AutoTokenizer``'s class
    resolution, which took 2–3 s of a warm start on a busy 2-vCPU machine
    (transformers 5.25).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not entry.trust_remote_code and _plain_tokenizer_json(folder):
        tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    else:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=entry.trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _plain_tokenizer_json(folder: Path) -> bool:
    """Return whether the folder's tokenizer is fully described by ``tokenizer.json``."""
    config = folder / "tokenizer_config.json"
    if not (folder / "tokenizer.json").is_file() or not config.is_file():
        return False
    try:
        name = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        return False
    return name in PLAIN_TOKENIZER_CLASSES


def load_weights(folder: Path, entry: ModelEntry, dtype: Any) -> Any:
    """Load the causal language model of a folder from its safetensors weights, in eval mode."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, trust_remote_code=entry.trust_remote_code, use_safetensors=True
    )
    model.eval()
    return model


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


def too_long_message(tokens: int, config: GenerationConfig, entry: ModelEntry) -> str:
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
