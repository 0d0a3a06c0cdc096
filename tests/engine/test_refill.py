"""Survivor refill as an engine mode (config.attack.refill of the adv suite): a whole
pass with refill on gives the fixed loop's per-example outputs and rows, and resumes."""
import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxbench import stopping, store as store_lib, suites, transforms
from jaxbench.attacks import refill as attacks_refill
from jaxbench.engine import loop, refill as refill_lib
from jaxbench.model_setup import ConfigError

BIM = "attack:bim(eps=8/255, space='normalized')"   # RoZ's BIM: 10 steps, early stop


def _write_folder(root, n_per_class=7):
  """3 classes x 7 random 32x32 PNGs and one unreadable file: 22 examples."""
  rng = np.random.default_rng(0)
  for c in ("cat", "dog", "fish"):
    os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(n_per_class):
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
          os.path.join(root, c, f"{c}_{i:02d}.png"))
  with open(os.path.join(root, "dog", "zz_corrupt.png"), "wb") as f:
    f.write(b"not a png")
  return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("refill_data")))


def _config(model_dir, data_dir, *, refill, transform=BIM, batch_size=8, data=1, **kw):
  c = ml_collections.ConfigDict(dict(
      suite="adv", seed=3, models=(model_dir,),
      zeroshot=dict(classnames="imagenet", templates="photo", head="imagenet",
                    logit_scale="model"),
      preprocess="", datasets=(f"image_folder(root={data_dir!r})",), transforms=(transform,),
      batch_size=batch_size, mesh=dict(data=data, model=1), checkpoint_every=1,
      log_every=100, num_workers=1, precision="float32", max_examples=-1, report=False,
      workdir_policy="strict",
      attack=dict(refill=refill, chunk_steps=2)))
  c.update(kw)
  return c


def _outputs(workdir):
  (pid,) = os.listdir(os.path.join(workdir, "passes"))
  return store_lib.Store(workdir).outputs(pid)


def _comparable(rows):
  """Rows without what only timing (or the mode itself) changes."""
  out = []
  for r in rows:
    r = {k: v for k, v in r.items() if k != "time"}
    r["details"] = {k: v for k, v in r["details"].items()
                    if k not in ("seconds", "images_per_s", "refill")}
    out.append(r)
  return out


# Attack-space norms of examples that end on the eps-ball's boundary may differ in
# the last float32 bits: XLA fuses the uint8 -> normalised-space conversion into the
# clip bounds z0 +- eps differently when the attack and its finalisation are one
# program (the fixed step) or several (refill), and XLA:CPU's code for a fused
# loop can change with the loop's length (the batch; jaxbench.cpu_flags). A norm is a difference of
# normalised pixels (|z| <= 2.7, float32 ulp 2.4e-7), so it carries a few ulps of
# those: atol 1e-6. Every other output is bit-identical.
ROUNDING = {"atk_linf", "atk_l2"}
NORM_ATOL = 1e-6


def _assert_same_outputs(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype, k
    if k in ROUNDING:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-6, atol=NORM_ATOL, err_msg=k)
    else:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_same_rows(a, b):
  a, b = _comparable(a), _comparable(b)
  assert [r["metric"] for r in a] == [r["metric"] for r in b]
  for x, y in zip(a, b):
    if x["metric"].endswith(("_linf", "_l2")) and "pixel" not in x["metric"]:
      assert x["value"] == pytest.approx(y["value"], rel=2e-6, abs=NORM_ATOL), x["metric"]
      x, y = dict(x, value=0), dict(y, value=0)
    assert x == y


@pytest.mark.parametrize("transform,data,batch_size", [
    (BIM, 2, 8),   # 22 examples, 8 slots over 2 devices
    # A random target class from each example's key: keys taken from slots or batch
    # positions instead of (seed, example id) change the targets and the outputs.
    ("attack:bim(eps=8/255, space='normalized', targeted='random')", 1, 5),
    ("attack:min_eps(attack='bim(steps=4)', grid=(0.01, 0.02, 0.04, 0.08), "
     "space='normalized')", 1, 8),
])
def test_refill_pass_equals_fixed_loop(tiny_clip, folder, tmp_path, transform, data,
                                       batch_size):
  model_dir, _ = tiny_clip
  runs = {}
  for on in (False, True):
    wd = str(tmp_path / f"refill_{on}")
    rows = suites.run(_config(model_dir, folder, refill=on, transform=transform,
                              data=data, batch_size=batch_size), wd)
    runs[on] = (rows, _outputs(wd))
  (rows_off, fixed), (rows_on, refilled) = runs[False], runs[True]
  assert len(fixed["index"]) == 22 and fixed["bad"].sum() == 1
  steps = fixed["atk_steps"][~fixed["bad"]]
  assert len(set(steps.tolist())) > 2          # examples finish at different iterations
  assert fixed["clean_correct1"].any() and fixed["atk_success"].any()
  _assert_same_outputs(fixed, refilled)
  _assert_same_rows(rows_on, rows_off)
  info = rows_on[0]["details"]["refill"]
  assert info["ran"] and info["chunk_steps"] == 2 and 0 < info["occupancy"] <= 1
  assert info["live_slot_steps"] <= info["slot_steps"]
  assert "refill" not in rows_off[0]["details"]


def _assert_stopped_run_resumes(cfg, tmp_path, monkeypatch, patch) -> list:
  """Runs ``cfg`` whole, then stopped as ``patch(m)`` arranges (a SIGTERM as the runner
  sees it), then resumed: the stop kept some finished examples once each, and the
  resumed outputs and rows equal the uninterrupted run's (returned)."""
  whole = str(tmp_path / "whole")
  rows_whole = suites.run(cfg, whole)
  wd = str(tmp_path / "stopped")
  with monkeypatch.context() as m:
    patch(m)
    with pytest.raises(stopping.Preempted, match="refill pass"):
      suites.run(cfg, wd)
  (pid,) = os.listdir(os.path.join(wd, "passes"))
  saved = store_lib.Store(wd).load_chunks(pid)
  assert 0 < len(saved["index"]) < 22                     # stopped mid-way
  assert len(np.unique(saved["index"])) == len(saved["index"])
  rows = suites.run(cfg, wd)                               # resumes the missing examples
  _assert_same_outputs(_outputs(whole), _outputs(wd))
  _assert_same_rows(rows, rows_whole)
  return rows_whole


def test_refill_pass_resumes_without_double_counting(tiny_clip, folder, tmp_path,
                                                     monkeypatch):
  model_dir, _ = tiny_clip
  calls = {"n": 0}

  def agreed():   # SIGTERM as the runner sees it, after 3 chunks of iterations
    calls["n"] += 1
    return calls["n"] >= 3
  _assert_stopped_run_resumes(_config(model_dir, folder, refill=True, batch_size=4),
                              tmp_path, monkeypatch,
                              lambda m: m.setattr(loop, "_stop_agreed", agreed))


def test_plan_refills_only_attacks_that_stop_per_example():
  on = refill_lib.Settings(True, 3)
  s, info = refill_lib.plan(transforms.get(BIM), on)
  assert s == on and info is None
  s, info = refill_lib.plan(transforms.get("attack:ensemble(attacks=['fgsm', 'bim'])"), on)
  assert s is None and info == {"ran": False,
                                "reason": "ensemble does not stop per example"}
  # Not an attack, refill off, or a suite without refill: the fixed loop, rows unchanged.
  assert refill_lib.plan(transforms.get("clean"), on) == (None, None)
  assert refill_lib.plan(transforms.get(BIM), refill_lib.Settings(False, 3)) == (None, None)
  assert refill_lib.plan(transforms.get(BIM), None) == (None, None)


def test_adv_suite_reads_the_attack_section():
  cfg = ml_collections.ConfigDict(dict(attack=dict(refill=True, chunk_steps=3)))
  assert suites.SUITES.get("adv").refill(cfg) == refill_lib.Settings(True, 3)
  assert suites.SUITES.get("zeroshot").refill(cfg) is None


@pytest.mark.parametrize("section,message", [
    (dict(refill="yes"), "config.attack.refill='yes': expected True or False"),
    (dict(refill=True, chunk_steps=0), "config.attack.chunk_steps=0: expected an int >= 1"),
])
def test_bad_refill_settings_are_named(section, message):
  with pytest.raises(ConfigError, match=message):
    refill_lib.settings(section)


def test_refill_pass_stopped_after_tail_compaction_resumes(tiny_clip, folder, tmp_path,
                                                           monkeypatch):
  # 4 slots: the tail of the pass moves its survivors into 2 (then 1) slots. A
  # SIGTERM right after that compaction keeps the finished examples only; the rerun
  # attacks the rest again and ends with the uninterrupted outputs.
  model_dir, _ = tiny_clip
  shrinks = []
  advance = attacks_refill.Slots.advance

  def spy(self, more):
    advance(self, more)
    shrinks.append(self.stats.shrinks)

  def patch(m):
    m.setattr(attacks_refill.Slots, "advance", spy)
    m.setattr(loop, "_stop_agreed", lambda: bool(shrinks) and shrinks[-1] > 0)
  rows_whole = _assert_stopped_run_resumes(
      _config(model_dir, folder, refill=True, batch_size=4), tmp_path, monkeypatch, patch)
  assert rows_whole[0]["details"]["refill"]["shrinks"] >= 1
