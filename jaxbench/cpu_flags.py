"""XLA:CPU options jaxbench sets by default, before JAX starts its backend.

jaxlib 0.10's CPU compiler hands every dot to a YNNPACK "fusion" and pulls the
elementwise work around it into the same fusion (LayerNorm statistics, the 49 taps
of ConvNeXt's depthwise convolution, bias broadcasts, whole attention blocks). On
x86 CPUs these fusions are slower than XLA's own code path (Eigen matrix
products and XLA's loop fusions): they materialise shifted copies and broadcasts
the loop fusions never write, and their fp32 matrix products ran 0.66-0.76x
PyTorch's where Eigen's ran 0.71-0.90x (ViT-B/16 and ConvNeXt shapes, batch 32,
one core, CPU seconds). Whole image towers against open_clip/timm (batch 32,
fp32, one core, CPU seconds, measured on a shared machine): ConvNeXt-Base 0.70x ->
1.01x, ViT-B-16-SigLIP 0.91x -> 1.03x, EVA02-B-16 0.93x -> 1.02x, CLIP RN50
1.26x -> 1.61x, ViT-B/16 0.90x -> 0.93x with the YNNPACK fusions off; an input
gradient (an attack step, batch 16) took 10.4 s instead of 12.1 s on ConvNeXt-Base
and 9.5 s instead of 10.4 s on SigLIP.

XLA's loop fusions (GELU, the depthwise taps, residual adds) are compiled for
256-bit vectors unless told otherwise; with 512-bit ones on this AVX-512 CPU
(``--xla_cpu_prefer_vector_width=512``; LLVM takes it as a preference, so CPUs
without AVX-512 keep their width) exact GELU went from 0.65x to 1.00x PyTorch's,
the 7x7 depthwise convolution from 0.87x to 1.06x, and the towers above to 1.06x /
1.02x / 1.01x (ConvNeXt / SigLIP / EVA02, same conditions).

So :func:`apply` turns the YNNPACK fusions off
(``--xla_cpu_experimental_ynn_fusion_type=``, an empty list) and asks for 512-bit
vectors, through ``XLA_FLAGS``, which XLA reads once, when the first backend
starts: it takes effect when ``jaxbench`` is imported before JAX runs anything
(``python -m jaxbench.*`` always is; when JAX's CPU backend already runs, :func:`apply`
warns that the flags missed it). The flags only change XLA:CPU programs
(GPU and TPU programs compile as before), only fp32 rounding changes, and a flag
the user's ``XLA_FLAGS`` already names is left as the user set it.

**On by default** (:data:`ENABLED`; ``JAXBENCH_CPU_FLAGS=off`` in the environment
gives XLA's own CPU options, ``on`` forces them). Both settings round fp32 in an
order that can depend on the batch size, so neither makes a real tower's outputs
bit-identical across batch sizes: a ViT-B/16 classifier's logits for one image
alone and in a batch of 32 differed by up to 2.9e-6 under XLA's defaults and 1.3e-6
with these flags (ConvNeXt-Base: 1.7e-6 both; ``python -m jaxbench.bench models``,
last column). XLA's defaults were
kept for a while because a small test model happened to be batch-invariant under
them; at the sizes people evaluate they are not (a lone LayerNorm of ViT-B shapes
already depends on the batch under YNNPACK's fusions, and does not with these flags).
What the benchmark promises is that a result does not depend on the batch beyond
fp32 rounding, and that holds in both settings: every prediction, success flag and
step count of ``tests/engine/test_refill.py``'s passes is identical between the
refill and the fixed loop with these flags; only attack-space norms of examples on
the eps-ball's boundary differ, by about one float32 ulp of the normalised pixels
(``atk_linf`` 0.0120006 vs 0.0120003).

XLA aborts the process on a flag it does not know, and the YNNPACK one is marked
experimental, so it is set only for the jaxlib versions it was measured on
(:data:`TESTED_JAXLIB`); other versions get XLA's defaults.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from importlib import metadata
from typing import MutableMapping, Optional

# name -> value; each becomes `--name=value` in XLA_FLAGS.
CPU_FLAGS = {"xla_cpu_experimental_ynn_fusion_type": "",
             "xla_cpu_prefer_vector_width": "512"}

# Whether apply() sets CPU_FLAGS when JAXBENCH_CPU_FLAGS is unset (see the module doc).
ENABLED = True

# jaxlib versions [low, high) whose XLA knows (and was measured with) CPU_FLAGS.
TESTED_JAXLIB = ((0, 10), (0, 11))


def _version(text: str) -> tuple[int, ...]:
  """'0.10.2' -> (0, 10, 2); '0.11.0.dev20260101' -> (0, 11, 0)."""
  return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def flags_for(xla_flags: str, jaxlib_version: Optional[str]) -> str:
  """``xla_flags`` with :data:`CPU_FLAGS` appended where it does not name them.

  Args:
    xla_flags: the current ``XLA_FLAGS`` value ('' when unset).
    jaxlib_version: the installed jaxlib's version, None when not installed.

  Returns:
    The new ``XLA_FLAGS`` value (``xla_flags`` unchanged outside
    :data:`TESTED_JAXLIB`).
  """
  if jaxlib_version is None:
    return xla_flags
  low, high = TESTED_JAXLIB
  if not low <= _version(jaxlib_version)[:2] < high:
    return xla_flags
  extra = [f"--{name}={value}" for name, value in CPU_FLAGS.items()
           if not re.search(rf"--{name}(=|\s|$)", xla_flags)]
  return " ".join([xla_flags.strip()] + extra).strip()


def enabled(environ: MutableMapping[str, str] = os.environ) -> bool:
  """``JAXBENCH_CPU_FLAGS`` ('on'/'off', '1'/'0') if set, else :data:`ENABLED`.

  Raises:
    ValueError: any other value, named.
  """
  value = environ.get("JAXBENCH_CPU_FLAGS", "").strip().lower()
  if not value:
    return ENABLED
  if value in ("on", "1", "true"):
    return True
  if value in ("off", "0", "false"):
    return False
  raise ValueError(f"JAXBENCH_CPU_FLAGS={value!r}: expected 'on' or 'off'")


def apply(environ: MutableMapping[str, str] = os.environ) -> str:
  """Sets ``environ['XLA_FLAGS']`` by :func:`flags_for` when :func:`enabled`; returns
  the resulting value (may be '')."""
  if not enabled(environ):
    return environ.get("XLA_FLAGS", "")
  try:
    version = metadata.version("jaxlib")
  except metadata.PackageNotFoundError:
    version = None
  before = environ.get("XLA_FLAGS", "")
  value = flags_for(before, version)
  if value:
    environ["XLA_FLAGS"] = value
  if value != before and _cpu_backend_started():
    warnings.warn(
        "jaxbench's XLA:CPU flags were not applied: JAX started its CPU backend before "
        "jaxbench was imported, and XLA reads XLA_FLAGS only then (CPU programs run "
        "slower, see jaxbench.cpu_flags). Import jaxbench before running anything in "
        f"JAX, or start Python with XLA_FLAGS={value!r}; JAXBENCH_CPU_FLAGS=off "
        "silences this.", RuntimeWarning, stacklevel=2)
  return value


def _cpu_backend_started() -> bool:
  """Whether JAX has already started its backends, with the CPU one the default."""
  bridge = sys.modules.get("jax._src.xla_bridge")
  if bridge is None or not bridge.backends_are_initialized():
    return False
  return bridge.default_backend() == "cpu"
