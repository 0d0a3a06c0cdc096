"""Test-wide settings: 8 simulated CPU devices, float32 matmuls, a private HF cache.

XLA_FLAGS must be set before JAX initialises its backend, so it lives here.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax  # noqa: E402

# Fidelity tests compare against PyTorch fp32 at 1e-4: use exact fp32 matmuls.
jax.config.update("jax_default_matmul_precision", "highest")
