"""Measure the peak memory of the bundled model and compare it with the estimate.

Run ``python -m redtier.tiers._benchmark`` to print the estimate error for
every precision the CPU backend runs (fp32, bf16, fp16). Each measurement
loads the model with ``TransformersBackend.load`` in a fresh child process,
generates one batch, and reads the child's peak resident set size with
``getrusage(RUSAGE_CHILDREN)`` from a wrapper process that has no other
children.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from redtier.catalog import DEFAULT_MODEL, Precision, estimate_memory, load_catalog
from redtier.tiers._tier import CPU_PRECISIONS

PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Explain in two sentences how a bicycle stays upright.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "Describe a rainy day in a small town, in a calm tone.",
    "What does a compiler do?",
    "Give me a short tip for learning to cook.",
)

_LOADER = """
import json, sys
from pathlib import Path
from redtier.backends import ChatRequest, GenerationConfig, TransformersBackend
from redtier.catalog import Precision, load_catalog
from redtier.settings import Settings
args = json.loads(sys.argv[1])
settings = Settings(db_url="sqlite://", cache_dir=Path(args["cache_dir"]))
entry = load_catalog().get(args["model"])
backend = TransformersBackend.load(entry, settings, precision=Precision(args["precision"]))
requests = [ChatRequest(prompt=prompt) for prompt in args["prompts"]]
config = GenerationConfig(max_new_tokens=args["new_tokens"], batch_size=len(requests))
generations = backend.generate(requests, config)
print(json.dumps({
    "tokens_in": max(g.tokens_in for g in generations),
    "tokens_out": sum(g.tokens_out for g in generations),
    "errors": [g.error for g in generations if g.error],
}))
"""

_WRAPPER = """
import json, resource, subprocess, sys
child = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({
    "returncode": child.returncode,
    "stdout": child.stdout,
    "stderr": child.stderr[-3000:],
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
}))
"""


class PeakMeasurement(BaseModel):
    """One measured peak against its estimate."""

    model_config = ConfigDict(frozen=True)

    model: str
    precision: Precision
    batch_size: int
    longest_prompt_tokens: int
    max_new_tokens: int
    peak_rss_bytes: int
    estimate_bytes: int

    @property
    def error(self) -> float:
        """Relative error of the estimate: positive when it overestimates."""
        return (self.estimate_bytes - self.peak_rss_bytes) / self.peak_rss_bytes


def prepare_weights(model: str, cache_dir: Path) -> None:
    """Convert a GGUF model once, so measurements see loading and not conversion."""
    from redtier.backends import locate_weights, sha256_of
    from redtier.backends._gguf_cache import cached_gguf_folder
    from redtier.catalog import ModelFormat

    entry = load_catalog().get(model)
    if entry.format is ModelFormat.GGUF:
        weights = locate_weights(entry)
        cached_gguf_folder(weights, sha256_of(weights), cache_dir)


def measure_peak(
    precision: Precision,
    cache_dir: Path,
    *,
    model: str = DEFAULT_MODEL,
    batch_size: int = 8,
    max_new_tokens: int = 16,
    timeout_s: float = 600.0,
) -> PeakMeasurement:
    """Load ``model`` at ``precision`` in a child process, generate a batch, and measure its peak RSS."""
    args = {
        "cache_dir": str(cache_dir),
        "model": model,
        "precision": precision.value,
        "prompts": [PROMPTS[i % len(PROMPTS)] for i in range(batch_size)],
        "new_tokens": max_new_tokens,
    }
    loader = [sys.executable, "-c", _LOADER, json.dumps(args)]
    wrapped = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *loader],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )
    report = json.loads(wrapped.stdout)
    if report["returncode"] != 0:
        raise RuntimeError(f"the loader process failed: {report['stderr']}")
    result = json.loads(report["stdout"].strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"generation failed: {result['errors']}")
    estimate = estimate_memory(
        load_catalog().get(model),
        precision,
        tokens=result["tokens_in"] + max_new_tokens,
        batch_size=batch_size,
    )
    return PeakMeasurement(
        model=model,
        precision=precision,
        batch_size=batch_size,
        longest_prompt_tokens=result["tokens_in"],
        max_new_tokens=max_new_tokens,
        peak_rss_bytes=report["peak_rss_bytes"],
        estimate_bytes=estimate,
    )


def main(argv: list[str] | None = None) -> None:
    """Print estimate against measured peak for each precision and batch size asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "redtier")
    parser.add_argument("--precision", nargs="+", type=Precision, default=list(CPU_PRECISIONS))
    parser.add_argument("--batch-size", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args(argv)
    prepare_weights(DEFAULT_MODEL, args.cache_dir)
    sys.stdout.write(
        "| precision | batch | longest sequence | estimate (MiB) | measured peak (MiB) | error |\n"
    )
    sys.stdout.write("|---|---:|---:|---:|---:|---:|\n")
    for precision in args.precision:
        for batch in args.batch_size:
            row = measure_peak(
                precision, args.cache_dir, batch_size=batch, max_new_tokens=args.max_new_tokens
            )
            sys.stdout.write(
                f"| {precision.value} | {batch} | {row.longest_prompt_tokens + row.max_new_tokens} "
                f"| {row.estimate_bytes / 2**20:.0f} | {row.peak_rss_bytes / 2**20:.0f} | {row.error:+.1%} |\n"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
