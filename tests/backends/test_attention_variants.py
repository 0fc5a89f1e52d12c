"""Continuous batching on a tiny random GPT-2, with each attention implementation the decoder supports."""

from __future__ import annotations

from pathlib import Path

import pytest

from redtier.backends._base import GenerationConfig
from redtier.backends._decode import SlotDecoder, supports_slot_decoding
from tests.test_backend_model import _tiny_gpt2_folder

PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [20], [21, 22, 23, 24, 25]]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_gpt2_folder(tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_tiny_gpt2_matches_generate(tiny_folder: Path, attention: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_folder, attn_implementation=attention)
    model.eval()
    assert supports_slot_decoding(model) is None
    config = GenerationConfig(max_new_tokens=12, batch_size=2)
    decoder = SlotDecoder(model, config, stop_ids={-1}, pad_id=0)
    batched = {f.index: f.tokens for f in decoder.run(list(enumerate(PROMPTS)))}

    for index, prompt in enumerate(PROMPTS):
        with torch.inference_mode():
            output = model.generate(
                torch.tensor([prompt]),
                attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
                max_new_tokens=12,
                do_sample=False,
                pad_token_id=0,
                eos_token_id=None,
            )
        assert batched[index] == output[0, len(prompt) :].tolist(), f"prompt {index}"
