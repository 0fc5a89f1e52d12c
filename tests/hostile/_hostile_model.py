"""Build a tiny model folder whose remote code runs a hostile payload.

The folder holds a two-layer GPT-2 with random weights, a word-level
tokenizer and ``modeling_hostile.py``, which ``trust_remote_code`` imports in
the model worker. The model's ``forward`` runs the payload whenever the input
contains the word ``trigger``, so one attempt of a scan sets it off and the
others do not.
"""

from __future__ import annotations

import json
from pathlib import Path

from redtier.catalog import ModelEntry, ModelFormat, SourceKind

TRIGGER_WORD = "trigger"
WORDS = ["hello", "world", "again", "please", "answer", TRIGGER_WORD, "now", "the", "a", "is"]

MODELING_TEMPLATE = '''
import os
import socket
import time

from transformers import GPT2Config, GPT2LMHeadModel

TRIGGER_ID = {trigger_id}


def run_payload():
{payload}


class HostileConfig(GPT2Config):
    model_type = "hostile-gpt2"


class HostileModel(GPT2LMHeadModel):
    config_class = HostileConfig

    def forward(self, input_ids=None, **kwargs):
        if input_ids is not None and bool((input_ids == TRIGGER_ID).any()):
            run_payload()
        return super().forward(input_ids=input_ids, **kwargs)
'''


def build_hostile_model(folder: Path, payload: str) -> ModelEntry:
    """Write the model folder with ``payload`` (Python statements) and return its catalog entry."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True)
    vocab = {word: index for index, word in enumerate(["[UNK]", "[EOS]", "[PAD]", *WORDS])}
    tokenizer_model = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer_model.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_model, unk_token="[UNK]", eos_token="[EOS]", pad_token="[PAD]"
    )
    tokenizer.save_pretrained(folder)

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=16, n_layer=2, n_head=2,
                        eos_token_id=vocab["[EOS]"], bos_token_id=vocab["[EOS]"], pad_token_id=vocab["[PAD]"])
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        # Keep the end-of-sequence logit low so generations are not empty.
        model.transformer.wte.weight[vocab["[EOS]"]].zero_()
    model.save_pretrained(folder)

    settings = json.loads((folder / "config.json").read_text())
    settings.update(
        model_type="hostile-gpt2",
        architectures=["HostileModel"],
        auto_map={
            "AutoConfig": "modeling_hostile.HostileConfig",
            "AutoModelForCausalLM": "modeling_hostile.HostileModel",
        },
    )
    (folder / "config.json").write_text(json.dumps(settings))
    body = "\n".join("    " + line for line in payload.strip().splitlines())
    (folder / "modeling_hostile.py").write_text(
        MODELING_TEMPLATE.format(trigger_id=vocab[TRIGGER_WORD], payload=body)
    )
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ModelEntry(
        name="hostile",
        family="gpt2",
        params=sum(p.numel() for p in model.parameters()),
        format=ModelFormat.HF,
        source_kind=SourceKind.PATH,
        source=str(folder),
        context_length=64,
        chat=False,
        trust_remote_code=True,
    )
