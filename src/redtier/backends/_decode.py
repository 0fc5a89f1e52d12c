"""Continuous batching over a causal language model's forward pass.

:class:`SlotDecoder` keeps up to ``batch_size`` rows generating at once. A row
leaves the batch at the step where it produces an end-of-sequence token or
reaches its token budget, and the caller receives it at once. Waiting prompts
are then prefilled and join the running batch in the freed places.

The key/value cache is one preallocated buffer per layer, shaped
``(slots, kv_heads, capacity, head_dim)``. Each slot contains one row, and rows
are ragged: a row's tokens fill the columns from ``start`` to ``write``, and a
boolean attention mask hides every other column. When the prompts of a prefill
group begin with the same tokens, columns ``0..shared-1`` hold that prefix, computed
once and copied to each of the group's slots, and the rest of each prompt follows
after a gap of padding. Because each row carries its
own position ids, a row's columns need not line up with any other row's, so
rows can leave and join without shifting the rest of the cache. A decode step
never reallocates the cache; it grows only when a longer prompt joins, whereas
transformers' ``DynamicCache`` concatenates and so copies the whole cache at
every step. Active rows always fill slots ``0..active-1``, because a finished
row's slot is filled by moving the last active row into it.

Greedy decoding is meant to pick the same tokens as ``model.generate`` run one
prompt at a time. NOTE: the logits are not bit-identical, because one prompt's
decode steps use matrix-vector kernels whose rounding differs from the batched
products here, so a near-tie between two tokens could resolve differently. The
backend tests check token equality on the bundled model for prompts of 23 to
about 1,000 tokens.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redtier.backends._base import GenerationConfig
from redtier.backends._slot_cache import Rows, SlotCache

logger = logging.getLogger(__name__)

MAX_CACHE_BYTES = 512 * 1024**2
"""Memory for the key/value cache of one batch; longer prompts get fewer rows."""
MAX_PREFILL_TOKENS = 8192
"""Padded prompt tokens in one prefill forward pass, which bounds its activations."""
MAX_PADDING_SHARE = 0.2
"""Largest share of padding in a prefill pass; a longer prompt waits for the next pass, since
padding costs as much compute as real tokens."""
MIN_SHARED_PREFIX = 8
"""Minimum number of leading tokens a prefill group must share before they are computed once."""
REFILL_DIVISOR = 8
"""New prompts are prefilled once ``batch_size // REFILL_DIVISOR`` slots (at least one) are free,
so that a prefill pass serves several rows."""
CAPACITY_STEP = 64
"""Cache capacity is rounded up to this many columns, so it grows in few reallocations."""
SUPPORTED_ATTENTION = ("sdpa", "eager")

StartCallback = Callable[[list[int]], None]
"""Called with the request indices that have just entered the batch."""


@dataclass(frozen=True)
class Finished:
    """One row's generated token ids (without the end-of-sequence token)."""

    index: int
    tokens: list[int]
    compute_s: float
    """Wall time of the forward passes the row took part in, each divided by the rows in it."""


@dataclass
class DecodeStats:
    """Time and token counts of a :class:`SlotDecoder` run, for logs and benchmarks."""

    prefill_passes: int = 0
    prefill_tokens: int = 0
    """Prompt tokens run through the model, shared prefixes counted once per group."""
    shared_tokens: int = 0
    """Prompt tokens that shared prefixes saved."""
    prefill_s: float = 0.0
    steps: int = 0
    step_rows: int = 0
    """Rows summed over decode steps; divided by ``steps``, the mean batch occupancy."""
    step_s: float = 0.0

    def describe(self) -> str:
        rows = self.step_rows / self.steps if self.steps else 0.0
        return (
            f"prefill {self.prefill_s:.1f} s for {self.prefill_tokens} prompt tokens in "
            f"{self.prefill_passes} passes ({self.shared_tokens} more were shared); decode "
            f"{self.step_s:.1f} s over {self.steps} steps of {rows:.1f} rows on average"
        )


def supports_slot_decoding(model: Any) -> str | None:
    """Return why ``model`` cannot use :class:`SlotDecoder`, or None when it can."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "it is an encoder-decoder model"
    attention = getattr(config, "_attn_implementation", None)
    if attention not in SUPPORTED_ATTENTION:
        return f"its attention implementation is {attention!r}"
    layers = DynamicCache(config=config).layers
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return "its cache has sliding-window, linear or shared layers"
    parameters = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in ("cache", "logits_to_keep", "position_ids", "attention_mask"):
        if name not in parameters and not takes_any:
            return f"its forward() has no {name!r} argument"
    return None


class SlotDecoder:
    """Generates for many prompts with continuous batching; see the module docstring."""

    def __init__(
        self,
        model: Any,
        config: GenerationConfig,
        *,
        stop_ids: set[int],
        pad_id: int,
        cache_bytes: int = MAX_CACHE_BYTES,
    ) -> None:
        import torch

        self._torch = torch
        self._model = model
        self._config = config
        self._stop_ids = stop_ids
        self._pad_id = pad_id
        text = model.config.get_text_config(decoder=True)
        layers = text.num_hidden_layers
        kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        dtype_bytes = torch.finfo(model.dtype).bits // 8
        per_token = 2 * layers * kv_heads * head_dim * dtype_bytes
        self._cache_tokens = max(1, cache_bytes // per_token)
        self._eager = model.config._attn_implementation == "eager"
        self._dtype = model.dtype
        self._cache = SlotCache(layers)
        self._rows = Rows()
        self.stats = DecodeStats()

    def run(
        self, prompts: Sequence[tuple[int, Sequence[int]]], on_start: StartCallback | None = None
    ) -> Iterator[Finished]:
        """Yield one :class:`Finished` per ``(index, prompt token ids)``, as each row completes.

        Prompts are admitted shortest first. ``on_start`` is called with the
        indices of each group of rows as it enters the batch.
        """
        torch = self._torch
        waiting = sorted(prompts, key=lambda item: len(item[1]), reverse=True)
        try:
            while waiting or self._rows.active:
                group = []
                if waiting and self._room() >= self._refill_threshold():
                    group = self._take_group(waiting)
                if group and on_start is not None:
                    on_start([index for index, _ in group])
                # Cache tensors are made in inference mode and may only change inside it,
                # but the caller's code between yields must not run in it.
                with torch.inference_mode():
                    finished = self._prefill(group) if group else self._step()
                yield from finished
        finally:
            self._cache.release()
            logger.debug("Decoding: %s", self.stats.describe())

    def _room(self) -> int:
        return self._config.batch_size - self._rows.active

    def _refill_threshold(self) -> int:
        if self._rows.active == 0:
            return 1
        return max(1, self._config.batch_size // REFILL_DIVISOR)

    def _take_group(
        self, waiting: list[tuple[int, Sequence[int]]]
    ) -> list[tuple[int, Sequence[int]]]:
        """Pop the next prompts that fit the free slots, the prefill limit and the cache budget."""
        budget = self._config.max_new_tokens
        active = self._rows.active
        group: list[tuple[int, Sequence[int]]] = []
        real = 0
        while waiting and len(group) < self._room():
            longest = len(waiting[-1][1])
            padded = longest * (len(group) + 1)
            rows = active + len(group) + 1
            capacity = max(self._rows.capacity_needed(), longest + budget)
            too_many_tokens = padded > MAX_PREFILL_TOKENS
            too_much_padding = padded - real - longest > MAX_PADDING_SHARE * padded
            too_much_cache = rows * _round_up(capacity) > self._cache_tokens
            if group and (too_many_tokens or too_much_padding):
                break
            if (group or active) and too_much_cache:
                break
            group.append(waiting.pop())
            real += longest
        return group

    def _prefill(self, group: list[tuple[int, Sequence[int]]]) -> list[Finished]:
        """Prefill the prompts of ``group`` into free slots and choose their first tokens.

        When the group's prompts start with the same tokens (a chat template's
        default system prompt, a probe's system prompt), that prefix is run once,
        in the first slot, and its keys and values are copied to the other slots.
        """
        torch = self._torch
        started = time.perf_counter()
        rows = self._rows
        first = rows.active
        count = len(group)
        shared = shared_prefix([ids for _, ids in group])
        width = max(len(ids) for _, ids in group)
        needed = _round_up(max(rows.capacity_needed(), width + self._config.max_new_tokens))
        if needed > self._cache.capacity or first + count > self._cache.slots:
            capacity = max(needed, self._cache.capacity)
            slots = max(first + count, min(self._config.batch_size, self._cache_tokens // capacity))
            self._cache.resize(slots, capacity, first)
        rows.ensure(self._cache.slots)
        if shared:
            self._prefill_prefix(first, count, group[0][1][:shared])

        rest = width - shared
        ids = torch.full((count, rest), self._pad_id, dtype=torch.long)
        valid = torch.zeros((count, rest), dtype=torch.bool)
        for row, (_, prompt) in enumerate(group):
            ids[row, width - len(prompt) :] = torch.tensor(prompt[shared:], dtype=torch.long)
            valid[row, width - len(prompt) :] = True
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0) + shared
        causal = torch.ones((rest, rest), dtype=torch.bool).tril()
        allowed = (causal[None] & valid[:, None, :]) | torch.eye(rest, dtype=torch.bool)[None]
        if shared:
            prefix = torch.ones((count, rest, shared), dtype=torch.bool)
            allowed = torch.cat([prefix, allowed], dim=-1)
        self._cache.state.set_prefill(first, count, offset=shared)
        logits = self._forward(ids, positions, allowed[:, None])
        stats = self.stats
        stats.prefill_passes += 1
        stats.prefill_tokens += int(valid.sum()) + shared
        stats.shared_tokens += shared * (count - 1)

        for row, (index, prompt) in enumerate(group):
            rows.admit(
                first + row,
                index=index,
                shared=shared,
                start=width - len(prompt) + shared,
                length=len(prompt),
                write=width,
                reach=width + self._config.max_new_tokens,
                generator=self._generator(prompt),
            )
        elapsed = time.perf_counter() - started
        stats.prefill_s += elapsed
        return self._advance(first, logits, elapsed)

    def _prefill_prefix(self, first: int, count: int, prefix: Sequence[int]) -> None:
        """Write the keys and values of ``prefix`` to columns ``0..len(prefix)-1`` of the group's slots."""
        torch = self._torch
        length = len(prefix)
        allowed = torch.ones((length, length), dtype=torch.bool).tril()
        self._cache.state.set_prefill(first, 1)
        self._forward(
            torch.tensor([list(prefix)], dtype=torch.long),
            torch.arange(length)[None],
            allowed[None, None],
        )
        if count > 1:
            self._cache.share(first, first + 1, count - 1, length)

    def _step(self) -> list[Finished]:
        """Generate one token for every active row."""
        torch = self._torch
        started = time.perf_counter()
        rows = self._rows
        active = rows.active
        write = rows.write[:active]
        view = int(write.max()) + 1
        columns = torch.arange(view)[None]
        allowed = (columns < rows.shared[:active, None]) | (
            (columns >= rows.start[:active, None]) & (columns <= write[:, None])
        )
        self._cache.state.set_decode(active, write, view)
        logits = self._forward(
            rows.last[:active, None], rows.length[:active, None], allowed[:, None, None]
        )
        rows.write[:active] += 1
        rows.length[:active] += 1
        elapsed = time.perf_counter() - started
        self.stats.steps += 1
        self.stats.step_rows += active
        self.stats.step_s += elapsed
        return self._advance(0, logits, elapsed)

    def _forward(self, ids: Any, positions: Any, allowed: Any) -> Any:
        torch = self._torch
        if self._eager:
            mask = torch.zeros(allowed.shape, dtype=self._dtype)
            mask.masked_fill_(~allowed, torch.finfo(self._dtype).min)
        else:
            mask = allowed
        output = self._model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=self._cache.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return output.logits[:, -1, :].float()

    def _advance(self, first: int, logits: Any, elapsed: float) -> list[Finished]:
        """Append each row's next token, from ``first`` on, and release the rows that finished."""
        rows = self._rows
        count = logits.shape[0]
        chosen = self._choose(first, logits)
        rows.last[first : first + count] = self._torch.tensor(chosen, dtype=self._torch.long)
        share = elapsed / count
        done: list[int] = []
        for offset, token in enumerate(chosen):
            slot = first + offset
            rows.compute_s[slot] += share
            if token in self._stop_ids:
                done.append(slot)
                continue
            rows.tokens[slot].append(token)
            if len(rows.tokens[slot]) >= self._config.max_new_tokens:
                done.append(slot)
        if not done:
            return []
        finished = [
            Finished(
                index=rows.index[slot], tokens=rows.tokens[slot], compute_s=rows.compute_s[slot]
            )
            for slot in done
        ]
        moves = rows.release(done)
        if moves:
            self._cache.move(moves)
        return finished

    def _choose(self, first: int, logits: Any) -> list[int]:
        torch = self._torch
        config = self._config
        if config.temperature <= 0:
            return [int(token) for token in logits.argmax(dim=-1).tolist()]
        probabilities = _top_p(torch.softmax(logits / config.temperature, dim=-1), config.top_p)
        chosen = []
        for offset in range(logits.shape[0]):
            generator = self._rows.generator[first + offset]
            chosen.append(int(torch.multinomial(probabilities[offset], 1, generator=generator)))
        return chosen

    def _generator(self, prompt: Sequence[int]) -> Any:
        """Return the row's sampling generator, or None when decoding is greedy."""
        if self._config.temperature <= 0:
            return None
        generator = self._torch.Generator()
        generator.manual_seed(row_seed(self._config.seed, prompt))
        return generator


def row_seed(seed: int, prompt: Sequence[int]) -> int:
    """Return a 63-bit sampling seed made from the scan seed and the prompt's token ids.

    Seeding each row from its own prompt makes its sample independent of which
    rows share its batch, so a resumed scan draws the same samples.
    """
    digest = hashlib.sha256(str(seed).encode() + b"\0" + array("q", prompt).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Return how many leading tokens every prompt shares, or 0 when sharing them saves little.

    Each prompt keeps at least one token of its own, whose logits choose its first new token.
    """
    if len(prompts) < 2:
        return 0
    first = prompts[0]
    length = min(len(prompt) for prompt in prompts) - 1
    for prompt in prompts[1:]:
        length = next(
            (position for position in range(length) if prompt[position] != first[position]),
            length,
        )
    return length if length >= MIN_SHARED_PREFIX else 0


def _top_p(probabilities: Any, top_p: float) -> Any:
    """Zero the tokens outside the smallest set whose probability reaches ``top_p``, per row."""
    import torch

    if top_p >= 1.0:
        return probabilities
    ordered, order = probabilities.sort(dim=-1, descending=True)
    before = ordered.cumsum(dim=-1) - ordered
    ordered = ordered.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probabilities).scatter(-1, order, ordered)


def _round_up(columns: int) -> int:
    return -(-columns // CAPACITY_STEP) * CAPACITY_STEP
