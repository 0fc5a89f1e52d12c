"""Whether this machine can run a tier: a GPU tier needs a GPU here."""

from __future__ import annotations

from pathlib import Path

from redtier.errors import ConfigError
from redtier.tiers._tier import Tier

GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd")
"""Device files that an NVIDIA or AMD GPU driver creates."""


def machine_has_gpu() -> bool:
    """Return whether this machine shows a GPU, by its driver's device files.

    NOTE: a GPU hidden from this process (no device files) counts as absent. A device
    file without a working driver counts as present, so loading fails later instead.
    """
    return any(Path(device).exists() for device in GPU_DEVICES)


def check_runs_here(tier: Tier, work: str, advice: str) -> None:
    """Raise ``ConfigError`` when ``tier`` needs a GPU and this machine shows none.

    Without the check, ``work`` would run on the CPU and be priced as the GPU
    instance. ``advice`` ends the message with what to do instead.
    """
    if tier.accelerator is None or machine_has_gpu():
        return
    raise ConfigError(
        f"Tier {tier.name} runs on a GPU ({tier.accelerator.gpu}), and this machine shows "
        f"none, so {work} would run on the CPU at GPU prices. {advice}"
    )
