"""The per-row state and the key/value buffers behind :class:`~redtier.backends._decode.SlotDecoder`.

Rows live in slots ``0..active-1``. Each cache layer keeps its keys and its
values in a ``(slots, kv_heads, capacity, head_dim)`` buffer. A forward pass
reads and writes the slots and columns that :class:`SlotState` names.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class Rows:
    """Per-slot state of the rows in the batch; slots ``0..active-1`` are in use."""

    active: int = 0
    index: list[int] = field(default_factory=list)
    tokens: list[list[int]] = field(default_factory=list)
    compute_s: list[float] = field(default_factory=list)
    generator: list[Any] = field(default_factory=list)
    shared: Any = None
    """Length of the prompt prefix the row shares with its prefill group, in cache columns ``0..shared-1``."""
    start: Any = None
    """First cache column of the rest of each row's prompt."""
    write: Any = None
    """Cache column the row's next token is written to."""
    length: Any = None
    """Tokens the row has so far, which is the position id of its next token."""
    last: Any = None
    """The row's last token, the input of the next step."""
    reach: list[int] = field(default_factory=list)
    """The highest cache column the row can need."""

    def ensure(self, slots: int) -> None:
        import torch

        if self.start is not None and self.start.shape[0] >= slots:
            return
        grow = slots - len(self.index)
        self.index += [-1] * grow
        self.tokens += [[] for _ in range(grow)]
        self.compute_s += [0.0] * grow
        self.generator += [None] * grow
        self.reach += [0] * grow
        tensors = [torch.zeros(slots, dtype=torch.long) for _ in range(5)]
        if self.start is not None:
            for new, old in zip(tensors, self._tensors()):
                new[: old.shape[0]] = old
        self.shared, self.start, self.write, self.length, self.last = tensors

    def _tensors(self) -> tuple[Any, ...]:
        return (self.shared, self.start, self.write, self.length, self.last)

    def capacity_needed(self) -> int:
        return max(self.reach[: self.active], default=0)

    def admit(
        self,
        slot: int,
        *,
        index: int,
        shared: int,
        start: int,
        length: int,
        write: int,
        reach: int,
        generator: Any,
    ) -> None:
        self.index[slot] = index
        self.tokens[slot] = []
        self.compute_s[slot] = 0.0
        self.generator[slot] = generator
        self.shared[slot] = shared
        self.start[slot] = start
        self.write[slot] = write
        self.length[slot] = length
        self.reach[slot] = reach
        self.active = max(self.active, slot + 1)

    def release(self, done: list[int]) -> list[tuple[int, int]]:
        """Free the slots in ``done`` and return the ``(source, target)`` moves that close the gaps."""
        remaining = self.active - len(done)
        finished = set(done)
        holes = [slot for slot in sorted(finished) if slot < remaining]
        movers = [slot for slot in range(remaining, self.active) if slot not in finished]
        moves = list(zip(movers, holes))
        for source, target in moves:
            self.index[target] = self.index[source]
            self.tokens[target] = self.tokens[source]
            self.compute_s[target] = self.compute_s[source]
            self.generator[target] = self.generator[source]
            self.reach[target] = self.reach[source]
            for tensor in self._tensors():
                tensor[target] = tensor[source]
        for slot in range(remaining, self.active):
            self.tokens[slot] = []
            self.generator[slot] = None
        self.active = remaining
        return moves


class SlotState:
    """The slots and columns of the next forward pass, shared by every cache layer."""

    def __init__(self) -> None:
        self.prefill = True
        self.first = 0
        self.count = 0
        self.offset = 0
        self.write: Any = None
        self.view = 0
        self.rows: Any = None

    def set_prefill(self, first: int, count: int, offset: int = 0) -> None:
        """Set the next pass to write its keys from column ``offset`` on, in slots ``first..first+count-1``.

        With a nonzero ``offset`` the pass also attends to the columns before it.
        """
        self.prefill = True
        self.first = first
        self.count = count
        self.offset = offset

    def set_decode(self, count: int, write: Any, view: int) -> None:
        import torch

        self.prefill = False
        self.first = 0
        self.count = count
        self.write = write
        self.view = view
        if self.rows is None or self.rows.shape[0] != count:
            self.rows = torch.arange(count)


class SlotCache:
    """The per-layer buffers and the transformers ``Cache`` object that reads and writes them."""

    def __init__(self, layers: int) -> None:
        from transformers.cache_utils import Cache

        self.state = SlotState()
        self.slots = 0
        self.capacity = 0
        layer_class = _slot_layer_class()
        self.layers = [layer_class(self) for _ in range(layers)]
        self.cache = Cache(layers=self.layers)

    def resize(self, slots: int, capacity: int, keep: int) -> None:
        """Reallocate every layer to ``slots`` x ``capacity``, keeping the first ``keep`` rows."""
        logger.debug("Resizing the key/value cache to %d slots x %d columns", slots, capacity)
        for layer in self.layers:
            layer.resize(slots, capacity, keep)
        self.slots = slots
        self.capacity = capacity

    def move(self, moves: list[tuple[int, int]]) -> None:
        import torch

        sources = torch.tensor([source for source, _ in moves])
        targets = torch.tensor([target for _, target in moves])
        for layer in self.layers:
            layer.move(sources, targets)

    def share(self, source: int, first: int, count: int, columns: int) -> None:
        """Copy the first ``columns`` columns of slot ``source`` into slots ``first..first+count-1``."""
        for layer in self.layers:
            layer.share(source, first, count, columns)

    def release(self) -> None:
        for layer in self.layers:
            layer.keys = layer.values = None
            layer.is_initialized = False
        self.slots = self.capacity = 0


@functools.cache
def _slot_layer_class() -> type:
    """Return the cache layer class, defined on first use so that importing this module is cheap."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):  # type: ignore[misc]
        """One layer's keys and values, in ``(slots, kv_heads, capacity, head_dim)`` buffers."""

        def __init__(self, owner: SlotCache) -> None:
            super().__init__()
            self._owner = owner

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            owner = self._owner
            self.device = key_states.device
            self.keys = torch.zeros(
                (owner.slots, key_states.shape[1], owner.capacity, key_states.shape[3]),
                dtype=key_states.dtype,
            )
            self.values = torch.zeros(
                (owner.slots, value_states.shape[1], owner.capacity, value_states.shape[3]),
                dtype=value_states.dtype,
            )
            self.is_initialized = True

        def update(
            self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any
        ) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            state = self._owner.state
            if state.prefill:
                end = state.first + state.count
                columns = state.offset + key_states.shape[2]
                self.keys[state.first : end, :, state.offset : columns] = key_states
                self.values[state.first : end, :, state.offset : columns] = value_states
                if state.offset == 0:
                    return key_states, value_states
                return self.keys[state.first : end, :, :columns], self.values[
                    state.first : end, :, :columns
                ]
            self.keys[state.rows, :, state.write] = key_states[:, :, 0]
            self.values[state.rows, :, state.write] = value_states[:, :, 0]
            return self.keys[: state.count, :, : state.view], self.values[
                : state.count, :, : state.view
            ]

        def get_seq_length(self) -> int:
            state = self._owner.state
            return state.offset if state.prefill else state.view - 1

        def resize(self, slots: int, capacity: int, keep: int) -> None:
            if not self.is_initialized:
                return
            keys = torch.zeros(
                (slots, self.keys.shape[1], capacity, self.keys.shape[3]), dtype=self.keys.dtype
            )
            values = torch.zeros(
                (slots, self.values.shape[1], capacity, self.values.shape[3]),
                dtype=self.values.dtype,
            )
            old = self.keys.shape[2]
            keys[:keep, :, :old] = self.keys[:keep]
            values[:keep, :, :old] = self.values[:keep]
            self.keys, self.values = keys, values

        def share(self, source: int, first: int, count: int, columns: int) -> None:
            if self.is_initialized:
                end = first + count
                self.keys[first:end, :, :columns] = self.keys[source : source + 1, :, :columns]
                self.values[first:end, :, :columns] = self.values[source : source + 1, :, :columns]

        def move(self, sources: Any, targets: Any) -> None:
            if self.is_initialized:
                self.keys[targets] = self.keys[sources]
                self.values[targets] = self.values[sources]

    return SlotLayer
