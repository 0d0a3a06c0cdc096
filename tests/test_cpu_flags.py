"""XLA:CPU flags jaxbench sets at import (jaxbench/cpu_flags.py): YNNPACK fusions off,
512-bit vectors.

The flag text is checked as a function of the user's XLA_FLAGS and the jaxlib
version; a fresh interpreter checks that importing jaxbench really reaches XLA
(the compiled program of a LayerNorm -> Dense has no YNNPACK fusion), and that a
user's own setting of the flag is kept (that program then has one, which also
shows the check can see a YNNPACK fusion at all).
"""
import os
import pathlib
import re
import subprocess
import sys
from importlib import metadata

import pytest

from jaxbench import cpu_flags

FLAG = "--xla_cpu_experimental_ynn_fusion_type="
ALL = f"{FLAG} --xla_cpu_prefer_vector_width=512"


def test_flags_are_added_to_what_the_user_set():
  assert cpu_flags.flags_for("", "0.10.2") == ALL
  assert cpu_flags.flags_for(" --xla_dump_to=/tmp/d ", "0.10.2") == f"--xla_dump_to=/tmp/d {ALL}"
  # A similar flag name is not the same flag.
  assert cpu_flags.flags_for("--xla_cpu_experimental_ynn_fusion_type_x=1", "0.10.0") == \
      f"--xla_cpu_experimental_ynn_fusion_type_x=1 {ALL}"
  # Each flag the user does not name is added.
  assert cpu_flags.flags_for("--xla_cpu_prefer_vector_width=256", "0.10.2") == \
      f"--xla_cpu_prefer_vector_width=256 {FLAG}"


@pytest.mark.parametrize("user", [f"{FLAG}dot", f"--xla_dump_to=d {FLAG}+dot --x=1",
                                  "--xla_cpu_experimental_ynn_fusion_type"])
def test_a_flag_the_user_names_is_left_alone(user):
  assert cpu_flags.flags_for(user, "0.10.2") == f"{user} --xla_cpu_prefer_vector_width=512"


@pytest.mark.parametrize("version", ["0.9.2", "0.11.0", "1.0.0", "0.11.0.dev20270101"])
def test_untested_jaxlib_versions_get_xla_defaults(version):
  # XLA aborts on a flag it does not know: only versions measured with it get it.
  assert cpu_flags.flags_for("--xla_dump_to=d", version) == "--xla_dump_to=d"
  assert cpu_flags.flags_for("", None) == ""


def test_apply_writes_the_environment_when_enabled():
  env = {"XLA_FLAGS": "--xla_dump_to=d", "JAXBENCH_CPU_FLAGS": "on"}
  value = cpu_flags.apply(env)
  assert env["XLA_FLAGS"] == value
  assert value == cpu_flags.flags_for("--xla_dump_to=d", metadata.version("jaxlib"))
  env = {"XLA_FLAGS": "--xla_dump_to=d", "JAXBENCH_CPU_FLAGS": "off"}
  assert cpu_flags.apply(env) == "--xla_dump_to=d" == env["XLA_FLAGS"]
  assert cpu_flags.enabled({}) is cpu_flags.ENABLED
  with pytest.raises(ValueError, match="JAXBENCH_CPU_FLAGS='maybe'"):
    cpu_flags.enabled({"JAXBENCH_CPU_FLAGS": "maybe"})


_PROGRAM = """
import jaxbench, jax, jax.numpy as jnp, flax.linen as nn
x = jnp.ones((64, 56, 128))
m = nn.Sequential([nn.LayerNorm(), nn.Dense(256), jax.nn.gelu])
p = m.init(jax.random.key(0), x[:1])
print("YNN" if "__ynn_fusion" in jax.jit(m.apply).lower(p, x).compile().as_text() else "NONE")
"""


def _fresh(program: str, *, switch=None, xla_flags=None, python_args=()):
  """``program`` run in a fresh CPU-only interpreter with no inherited ``XLA_FLAGS`` or
  ``JAXBENCH_CPU_FLAGS`` (only ``switch`` / ``xla_flags`` when given)."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXBENCH_CPU_FLAGS")}
  env["JAX_PLATFORMS"] = "cpu"
  if switch is not None:
    env["JAXBENCH_CPU_FLAGS"] = switch
  if xla_flags is not None:
    env["XLA_FLAGS"] = xla_flags
  return subprocess.run([sys.executable, *python_args, "-c", program], env=env,
                        capture_output=True, text=True, timeout=300, check=True)


def _compiled_with(xla_flags, dump, switch="on"):
  """(YNN or NONE, the vector widths the dumped LLVM IR's functions prefer) of a
  LayerNorm -> Dense -> GELU compiled in a fresh interpreter that imports jaxbench first."""
  out = _fresh(_PROGRAM, switch=switch,
               xla_flags=f"--xla_dump_to={dump} {xla_flags}".strip())
  ir = "".join(p.read_text() for p in pathlib.Path(dump).glob("*.ir-with-opt.ll"))
  widths = {int(w) for w in re.findall(r'"prefer-vector-width"="(\d+)"', ir)}
  return out.stdout.split()[-1], widths


def test_importing_jaxbench_sets_the_flags_in_xla(tmp_path):
  low, high = cpu_flags.TESTED_JAXLIB
  version = cpu_flags._version(metadata.version("jaxlib"))[:2]
  assert low <= version < high, (
      f"jaxlib {metadata.version('jaxlib')} is outside TESTED_JAXLIB {cpu_flags.TESTED_JAXLIB}: "
      "measure the flags with it (python -m jaxbench.bench models) and update the range")
  assert _compiled_with("", tmp_path / "ours") == ("NONE", {512})
  # On by default: the same program when JAXBENCH_CPU_FLAGS is unset.
  assert cpu_flags.ENABLED
  assert _compiled_with("", tmp_path / "default", switch=None) == ("NONE", {512})
  # The user's own values win (XLA's defaults: the LayerNorm fused into a YNNPACK dot,
  # 256-bit vectors in the loop fusions).
  assert _compiled_with(f"{FLAG}+dot --xla_cpu_prefer_vector_width=256",
                        tmp_path / "user") == ("YNN", {256})
  # Switched off: XLA's defaults.
  assert _compiled_with("", tmp_path / "off", switch="off") == ("YNN", {256})


def _warnings_of(program: str) -> str:
  """stderr of ``program`` in a fresh interpreter, RuntimeWarnings shown, no flags set."""
  return _fresh(program, python_args=("-W", "always::RuntimeWarning")).stderr


def test_importing_jaxbench_after_jax_started_warns_that_the_flags_missed():
  late = _warnings_of("import jax; jax.numpy.ones(2).block_until_ready(); import jaxbench")
  assert "flags were not applied" in late and "--xla_cpu_prefer_vector_width=512" in late
  # Imported first (or JAX imported but not yet run): no warning, the flags reach XLA.
  assert "not applied" not in _warnings_of(
      "import jax, jaxbench; jax.numpy.ones(2).block_until_ready()")
