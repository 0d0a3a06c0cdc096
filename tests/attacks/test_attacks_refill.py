"""Batch independence: 1 vs 8 devices, batch 1 vs 16, survivor refill, ensembles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxbench import attacks
from jaxbench.attacks import metrics, refill
from attack_helpers import keys, linear_apply, make_linear, toy2d

# Same data and spec as the property table's DIM case (compiled once).
XS = jnp.asarray(np.random.default_rng(1).uniform(size=(16, 4, 4, 3)).astype(np.float32))
PS = make_linear(48, 5, seed=5, scale=0.5)
YS = np.asarray(linear_apply(PS, XS)).argmax(-1)
KS = keys(16, seed=7)


def _same(r1, r2):
  np.testing.assert_allclose(np.asarray(r1.adv_images), np.asarray(r2.adv_images), atol=1e-6)
  for k in ("success", "queries"):
    np.testing.assert_array_equal(np.asarray(getattr(r1, k)), np.asarray(getattr(r2, k)))
  np.testing.assert_array_equal(np.asarray(r1.diagnostics["steps"]),
                                np.asarray(r2.diagnostics["steps"]))


def test_dim_same_on_1_and_8_devices_and_batch_1_and_16():
  # DIM: per-example random diversity, momentum and early stop.
  a = attacks.get("dim(eps=0.08)")
  full = a(linear_apply, PS, XS, YS, KS)
  assert 0 < np.asarray(full.success).mean() < 1
  steps = np.asarray(full.diagnostics["steps"])
  assert len(set(steps.tolist())) > 2        # examples stop at different steps
  alone = [a(linear_apply, PS, XS[i:i + 1], YS[i:i + 1], KS[i:i + 1]) for i in range(16)]
  alone = jax.tree.map(lambda *xs: np.concatenate(xs), *alone)
  _same(full, alone)
  mesh = jax.make_mesh((8,), ("data",))
  sh, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
  f = jax.jit(lambda p, x, y, k: a(linear_apply, p, x, y, k),
              in_shardings=(rep, sh, sh, sh), out_shardings=sh)
  sharded = f(PS, XS, jnp.asarray(YS), KS)
  assert len(sharded.adv_images.sharding.device_set) == 8
  _same(full, sharded)


# 2-class linear model: the minimal L-inf eps is margin / ||w_0 - w_1||_1.
RNG = np.random.default_rng(4)
XM = jnp.asarray(RNG.uniform(0.3, 0.7, size=(12, 4, 4, 3)).astype(np.float32))
PM = make_linear(48, 2, seed=7, scale=0.05)
GRID = tuple(round(0.01 * i, 2) for i in range(1, 13))


def _analytic_min_eps(x, p, labels):
  logits = np.asarray(linear_apply(p, x))
  dw = np.abs(np.asarray(p["w"])[:, 0] - np.asarray(p["w"])[:, 1]).sum()
  need = np.abs(logits[:, 0] - logits[:, 1]) / dw
  idx = np.searchsorted(np.asarray(GRID), need, side="right")
  want = np.where(idx < len(GRID), np.asarray(GRID)[np.minimum(idx, len(GRID) - 1)], np.inf)
  return np.where(logits.argmax(1) == labels, want, 0.0), need


def test_min_eps_binary_search_with_refill_equals_alone_and_analytic():
  labels = np.asarray(linear_apply(PM, XM)).argmax(1)
  labels[0] = 1 - labels[0]                     # misclassified: minimal eps 0
  want, need = _analytic_min_eps(XM, PM, labels)
  border = np.min(np.abs(need[:, None] - np.asarray(GRID)[None]), axis=1) < 1e-4
  assert not border.any() and np.isfinite(want).sum() >= 6 and np.isinf(want).any()
  a = attacks.get(f"min_eps(attack='bim(steps=20)', grid={GRID})")
  k = keys(12, seed=2)
  res, stats = refill.run(a, linear_apply, PM, refill.examples_from_arrays(XM, labels, k, batch=5),
                          batch_size=4, chunk_steps=3)
  np.testing.assert_array_equal(res.diagnostics["min_eps"], want.astype(np.float32))
  assert stats.examples == 12 and stats.occupancy > 0.5
  alone = [a(linear_apply, PM, XM[i:i + 1], labels[i:i + 1], k[i:i + 1]) for i in range(12)]
  alone = jax.tree.map(lambda *xs: np.concatenate(xs), *alone)
  np.testing.assert_array_equal(res.adv_images, alone.adv_images)
  np.testing.assert_array_equal(res.queries, alone.queries)
  np.testing.assert_array_equal(res.diagnostics["min_eps"], alone.diagnostics["min_eps"])
  m = metrics.summarize(res)
  assert m["median_min_eps"] == float(np.median(want.astype(np.float32)))


def test_ensemble_is_worst_case_over_stages():
  x, p = toy2d(n=32)
  labels = np.asarray(linear_apply(p, x)).argmax(-1)
  labels[:3] = 1 - labels[:3]
  k = keys(32)
  fg = attacks.get("fgsm(eps=0.15)")(linear_apply, p, x, labels, k)
  ens = attacks.get("ensemble(attacks=['fgsm', 'deepfool'], eps=0.15)")
  r = ens(linear_apply, p, x, labels, k)
  # Stage i sees stage-folded keys; deepfool is deterministic, fgsm too.
  df = attacks.get("deepfool(eps=0.15)")(linear_apply, p, x, labels, k)
  rob_fg = ~np.asarray(fg.success) & np.asarray(fg.diagnostics["clean_correct"])
  rob_df = ~np.asarray(df.success) & np.asarray(df.diagnostics["clean_correct"])
  stages = np.asarray(r.diagnostics["robust_stage"])
  np.testing.assert_array_equal(stages[:, 0], rob_fg)
  np.testing.assert_array_equal(stages[:, 1], rob_fg & rob_df)
  robust = np.asarray(r.diagnostics["clean_correct"]) & np.asarray(r.diagnostics["adv_correct"])
  np.testing.assert_array_equal(robust, rob_fg & rob_df)
  m = metrics.summarize(r)
  assert m["stage_robust_acc"] == [rob_fg.mean(), (rob_fg & rob_df).mean()]
  assert m["robust_acc"] == (rob_fg & rob_df).mean()
  # The same cascade with refill, stage by stage over survivors.
  out, _ = refill.run_ensemble(ens, linear_apply, p, x, labels, k, batch_size=8)
  np.testing.assert_array_equal(out["robust_stage"], stages)
  np.testing.assert_allclose(out["adv_images"], np.asarray(r.adv_images), atol=1e-6)


def test_refill_with_launch_cap_and_tail_compaction_equals_batched():
  # 40 updates: unbroken examples outlast a launch (MAX_LAUNCH_STEPS), 16 examples
  # through 4 slots top the reservoir up several times, and the tail is compacted
  # into 2 and 1 slots; every example's result equals the one batched run's.
  a = attacks.get("bim(eps=0.02, steps=40, step_ratio=0.05)")
  full = a(linear_apply, PS, XS, YS, KS)
  steps = np.asarray(full.diagnostics["steps"])
  assert steps.max() > refill.MAX_LAUNCH_STEPS and len(set(steps.tolist())) > 3
  res, stats = refill.run(a, linear_apply, PS, refill.examples_from_arrays(XS, YS, KS, batch=3),
                          batch_size=4, chunk_steps=1)
  assert stats.shrinks >= 1 and stats.examples == 16 and stats.occupancy > 0.8
  np.testing.assert_array_equal(res.adv_images, np.asarray(full.adv_images))
  for k in ("success", "queries"):
    np.testing.assert_array_equal(getattr(res, k), np.asarray(getattr(full, k)))
  for k in full.diagnostics:
    np.testing.assert_array_equal(res.diagnostics[k], np.asarray(full.diagnostics[k]), err_msg=k)


def test_reservoir_refuses_more_than_it_holds():
  a = attacks.get("bim(eps=0.03)")
  slots = refill.Slots(a, linear_apply, PS, batch_size=4)
  x, y, kd = np.asarray(XS[:4]), YS[:4], np.asarray(jax.random.key_data(KS[:4]))
  for i in range(3):   # hold=2 scoring batches + one batch of slots: the reservoir is full
    assert slots.room()
    slots.add(list(range(4 * i, 4 * i + 4)), x, y, kd)
  assert not slots.room()
  with pytest.raises(ValueError, match="refill: 4 examples for a reservoir with 12 of 12 rows "
                     "in use: expected at most batch_size=4"):
    slots.add([12, 13, 14, 15], x, y, kd)


def test_refill_last_launch_past_a_scoring_batch_scores_each_example_once():
  # 11 examples through 4 slots (scoring batches of 8): ten are misclassified
  # (finished at their first evaluation), example 3 is broken by its first update.
  # Finished counts run 3, 7, 11: the last launch ends 3 examples past a scoring
  # batch, which the final batch must take from the right rows of the buffer.
  a = attacks.get("bim(eps=0.5, step_ratio=1.0)")
  x = XS[:11]
  labels = (np.asarray(linear_apply(PS, x)).argmax(-1) + 1) % 5
  labels[3] -= 1
  labels[3] %= 5
  k = KS[:11]
  full = a(linear_apply, PS, x, labels, k)
  steps = np.asarray(full.diagnostics["steps"])
  assert steps[3] == 2 and (np.delete(steps, 3) == 1).all() and bool(full.success[3])
  res, stats = refill.run(a, linear_apply, PS, refill.examples_from_arrays(x, labels, k, batch=11),
                          batch_size=4)
  assert stats.examples == 11
  np.testing.assert_array_equal(res.adv_images, np.asarray(full.adv_images))
  np.testing.assert_array_equal(res.diagnostics["steps"], steps)
  np.testing.assert_array_equal(res.success, np.asarray(full.success))


def test_slots_refuse_to_advance_over_untaken_outputs():
  a = attacks.get("bim(eps=0.03)")
  slots = refill.Slots(a, linear_apply, PS, batch_size=4, hold=1)
  wrong = (YS[:8] + 1) % 5                   # misclassified: done at the first evaluation
  kd = np.asarray(jax.random.key_data(KS[:8]))
  slots.add([0, 1, 2, 3], np.asarray(XS[:4]), wrong[:4], kd[:4])
  slots.add([4, 5, 6, 7], np.asarray(XS[4:8]), wrong[4:], kd[4:])
  slots.advance(more=False)
  with pytest.raises(ValueError, match="refill: 4 finished examples not taken: expected ready"):
    slots.advance(more=False)
  ids = [i for batch in slots.ready(final=True) for i in batch[0]]
  slots.advance(more=False)
  ids += [i for batch in slots.ready(final=True) for i in batch[0]]
  assert sorted(ids) == list(range(8)) and slots.idle()
