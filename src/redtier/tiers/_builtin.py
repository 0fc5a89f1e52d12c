"""The built-in tiers, written in the tier file format so they double as its example."""

from __future__ import annotations

BUILTIN_SOURCE = "built-in"

BUILTIN_TIERS_YAML = """\
# redtier tiers. A user file (--tiers FILE or REDTIER_TIERS) in this format
# adds tiers, replaces built-in tiers of the same name, and may set `policy`.
#
# Prices are estimates in US dollars per hour for us-east-1 Linux instances:
# on-demand prices as AWS listed them in mid-2025, spot prices typical of
# 2025 (spot prices change hourly). Check the EC2 pricing page and
# `aws ec2 describe-spot-price-history` before relying on a budget.
#
# Throughput values are configured estimates, not measurements, except the
# cpu_small reference point: the bundled 135M model generated 121 tokens/s
# at batch 32 in fp32 on a 2-core x86 VM. Replace them with speeds measured on
# your own instances under `measured:`.
#
# start_s and load_gb_per_s estimate the start of each job: starting the
# sandboxed worker and importing torch and transformers, then reading the
# weights. On cpu_small the bundled model took 3.5 s with its 0.5 GB of fp32
# weights in the page cache. The GPU tiers add CUDA start-up, and read weights
# at about the 250 MB/s of an EBS gp3 volume. Downloading a model is not counted.

policy:
  allow_quantization: false   # true lets routing pick int8 or 4-bit to fit a cheaper tier
  price: on_demand            # or spot

tiers:
  - name: cpu_small
    description: Two vCPUs; for models up to about 150M parameters.
    accelerator: none
    memory: 2 GiB             # what one job may use; the instance has 4 GiB
    attempt_timeout_s: 60
    instance_type: c6i.large  # 2 vCPU, 4 GiB
    price_usd_per_hour: {on_demand: 0.085, spot: 0.035}
    throughput: {tokens_per_s: 100, reference_params: 135M, max_tokens_per_s: 160}  # 121 measured at 32 rows
    start_s: 3
    load_gb_per_s: 1.0
    precisions: [fp32, bf16]

  - name: gpu_small
    description: One NVIDIA T4, which has no fast bf16, so 16-bit models run in fp16.
    accelerator: {gpu: NVIDIA T4, count: 1, memory: 15360 MiB}   # as nvidia-smi reports it
    memory: 14 GiB            # the instance has 16 GiB
    attempt_timeout_s: 60
    instance_type: g4dn.xlarge  # 4 vCPU, 16 GiB, 1 x T4 16 GB
    price_usd_per_hour: {on_demand: 0.526, spot: 0.22}
    throughput: {tokens_per_s: 600, reference_params: 1.2B, max_tokens_per_s: 1500}
    start_s: 10
    load_gb_per_s: 0.25
    precisions: [fp16, int8, 4bit]

  - name: gpu_large
    description: One NVIDIA A10G.
    accelerator: {gpu: NVIDIA A10G, count: 1, memory: 23028 MiB}  # as nvidia-smi reports it
    memory: 28 GiB            # the instance has 32 GiB
    attempt_timeout_s: 60
    instance_type: g5.2xlarge   # 8 vCPU, 32 GiB, 1 x A10G 24 GB
    price_usd_per_hour: {on_demand: 1.212, spot: 0.48}
    throughput: {tokens_per_s: 800, reference_params: 7.2B, max_tokens_per_s: 2500}
    start_s: 10
    load_gb_per_s: 0.25
    precisions: [bf16, fp16, int8, 4bit]
"""
