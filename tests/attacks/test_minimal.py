"""Minimal-eps search (RoZ's "V2" mode): iterations per probe and the median row.

The step counts are observed from outside the attack: the surrogate model
reports every evaluation through a host callback with its distance to the
clean image, so each binary-search probe shows up as a run of evaluations that
starts at the clean image (distance 0) and whose largest distance is the
probe's radius.
"""
import dataclasses
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import attacks, store, transforms
from jaxbench.attacks import checks, metrics

X0 = jnp.full((1, 2, 2, 3), 0.5, jnp.float32)
Y0 = jnp.zeros((1,), jnp.int32)
CALLS = []


def _record(z):
  CALLS.append(float(np.abs(np.asarray(z) - 0.5).max()))


def surrogate(p, x):
  """Loss ascent on class 0 raises every pixel; logs each evaluation."""
  jax.debug.callback(_record, x)
  return jnp.stack([jnp.zeros(x.shape[0]), jnp.mean(x, axis=(1, 2, 3)) - 0.5], -1)


def fragile(p, x):
  """Class 0 at the clean image, class 1 after any step of the surrogate's ascent."""
  return jnp.stack([jnp.zeros(x.shape[0]),
                    1e3 * (jnp.mean(x, axis=(1, 2, 3)) - 0.5 - 1e-5)], -1)


def rock(p, x):
  """Class 0 whatever the input: never broken."""
  return jnp.stack([jnp.full(x.shape[0], 2.0), 0 * jnp.mean(x, axis=(1, 2, 3))], -1)


def _probes():
  """[(evaluations, radius)] per probe from the callback log."""
  out = []
  for c in CALLS:
    if c == 0:
      out.append([])
    out[-1].append(c)
  return [(len(r), round(max(r), 6)) for r in out]


@pytest.mark.parametrize("victim,probes,found", [
    # Never broken: probes 0.003 (index 2 of 4), then 0.4.
    (rock, [0.003, 0.4], np.inf),
    # Broken at every radius: probes 0.003, 0.002, 0.001.
    (fragile, [0.003, 0.002, 0.001], 0.001),
])
def test_transfer_bim_search_runs_20_steps_at_every_radius(victim, probes, found):
  # RoZ's search_attack: steps = 20 at every radius. The fixed-eps rule
  # int(min(eps*255 + 4, 1.25*eps*255)) would give 0 updates at 0.001-0.003
  # (fragile never broken there) and 106 at 0.4.
  grid = (0.001, 0.002, 0.003, 0.4)
  a = attacks.get(f"min_eps(attack=\"transfer(attack='bim')\", grid={grid})")
  a = dataclasses.replace(a, attack=a.attack.with_surrogate(surrogate, {}))
  CALLS.clear()
  r = a(victim, {}, X0, Y0)
  jax.effects_barrier()
  assert _probes() == [(20, p) for p in probes]
  assert float(r.diagnostics["min_eps"][0]) == pytest.approx(found)
  assert int(r.diagnostics["rounds"][0]) == len(probes)


def test_min_eps_preset_uses_fixed_steps():
  path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "adv.py")
  spec = importlib.util.spec_from_file_location("adv_config_min_eps", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  searches = [attacks.get(t.split(":", 1)[1]) for t in mod.min_eps_transforms()]
  searches = [a for a in searches if a.name == "min_eps"]
  assert len(searches) == 10
  for a in searches:
    inner = a.attack.attack if a.attack.name == "transfer" else a.attack
    assert inner.steps is not None, a.attack.spec()
    if inner.name in ("bim", "nes", "spsa"):
      assert inner.steps == 20, a.attack.spec()


@pytest.mark.parametrize("spec,steps", [
    ("min_eps(attack='bim')", 20),            # left to the eps rule: the search's 20
    ("min_eps(attack='bim', steps=7)", 7),
    ("min_eps(attack='mim')", 19),            # explicit counts are kept
])
def test_search_replaces_only_the_eps_rule(spec, steps):
  assert attacks.get(spec).attack.steps == steps


@pytest.mark.parametrize("spec,match", [
    ("min_eps(steps=0)", "steps=0"),
    ("min_eps(attack='cw', grid=(0.2, 0.1))", r"min_eps: attack must be an iterative"),
    ("min_eps(grid=(0.2, 0.1))", r"expected sorted radii"),
])
def test_bad_hyperparameters_raise_clear_errors(spec, match):
  with pytest.raises(attacks.AttackInputError, match=match):
    attacks.get(spec)


def _outputs(min_eps, eps):
  n = len(min_eps)
  return {"mask": np.ones(n, bool), "clean_correct": np.ones(n, bool),
          "adv_correct": np.ones(n, bool), "success": np.zeros(n, bool),
          "linf": np.zeros(n), "l2": np.zeros(n), "pixel_linf": np.zeros(n),
          "queries": np.full(n, 3), "in_ball": np.ones(n, bool),
          "in_bounds": np.ones(n, bool), "zero_grad_frac": np.zeros(n),
          "prob_like": np.zeros(n, bool), "min_eps": np.asarray(min_eps, np.float32),
          "eps": np.asarray(eps, np.float32)}


# 3 of 5 never broken within the grid (max 0.009): the median is beyond it.
MOSTLY_UNBROKEN = _outputs([0.002, np.inf, 0.0, np.inf, np.inf],
                           [0.002, 0.009, 0.009, 0.009, 0.009])


def _runner_metrics(out):
  """The runner's path: per-example outputs as the compiled step returns them."""
  run = {f"atk_{k}": v for k, v in out.items() if k not in ("clean_correct", "adv_correct")}
  run.update(clean_correct1=out["clean_correct"], correct1=out["adv_correct"])
  return transforms.attack_metrics(run)


def test_median_min_eps_is_inf_when_most_are_never_broken():
  m = metrics.summarize(MOSTLY_UNBROKEN)
  assert m["median_min_eps"] == np.inf and m["min_eps_found"] == pytest.approx(0.4)
  assert m["mean_min_eps"] == pytest.approx(0.001)


def test_min_eps_check_notes_the_never_broken():
  c = checks.min_eps_search(MOSTLY_UNBROKEN)
  assert c["min_eps_never_broken"] == 3 and c["min_eps_max_radius"] == pytest.approx(0.009)
  assert c["median_min_eps_note"].startswith("> max grid (0.009): 3 of 5 examples")


def test_runner_metrics_report_the_inf_median_with_a_note():
  values, checks_row = _runner_metrics(MOSTLY_UNBROKEN)
  assert values["median_min_eps"] == np.inf
  assert "> max grid" in checks_row["median_min_eps_note"]


def test_inf_median_is_stored_as_infinity(tmp_path):
  values, checks_row = _runner_metrics(MOSTLY_UNBROKEN)
  # Stored as Infinity in results.jsonl and read back as inf.
  s = store.Store(str(tmp_path))
  s.add_rows([{"key": "k", "metric": "median_min_eps", "value": values["median_min_eps"],
               "details": {"checks": checks_row}}])
  assert "Infinity" in open(s.results_path).read()
  assert s.rows()[0]["value"] == np.inf


def test_median_is_finite_when_fewer_than_half_are_never_broken():
  out2 = _outputs([0.002, np.inf, 0.0, 0.004, 0.001], [0.002, 0.009, 0.009, 0.004, 0.001])
  assert metrics.summarize(out2)["median_min_eps"] == pytest.approx(0.002)
  assert "median_min_eps_note" not in checks.min_eps_search(out2)
