"""AutoPrompt (RoZ's CLIP-Auto): HotFlip scores, one search step, the search, bad settings."""
import jax.numpy as jnp
import numpy as np
import pytest

import clip_auto_testlib as tl
from jaxbench.zeroshot.learned import autoprompt, heads, layout

CFG = tl.autoprompt_config()


@pytest.fixture(scope="module")
def t():
  return tl.trained()


@pytest.fixture(scope="module")
def step(t):
  """One sharded search step and a single-device loss of trigger embeddings."""
  _, feats, labels = tl.kshot_features(t, k=16)
  p = autoprompt.make_problem(t.model, feats, labels, tl.NAMES, CFG, tl.mesh8())
  net = t.model.params["net"]
  trig = np.asarray(tl.START, np.int32)
  krows, kpos = autoprompt.iteration_keys(0, 0, 3)
  f, l, w = autoprompt.iteration_rows(p, krows, CFG)
  out = autoprompt.search_step(t.model.arch, net, p.table, p.allowed, p.ids, p.eot,
                               p.class_mask, trig, f, l, w, p.scale, p.bias, kpos,
                               num_candidates=CFG.num_candidates, chunk=0, mesh=tl.mesh8())
  # Reference: the loss on one device, over the 5 real classes only.
  single = layout.make_layout(t.model, tl.NAMES, 4)
  fh, lh, wh = (np.asarray(x) for x in (f, l, w))

  def loss(emb):
    return float(autoprompt.trigger_loss(t.model.arch, net, single.ids, single.eot,
                                         np.ones(5, bool), jnp.asarray(emb, jnp.float32),
                                         fh, lh, wh, p.scale, p.bias)[0])
  return p, trig, f, out, loss


def test_problem_pads_classes_and_shards_rows(step):
  p, _, f, _, _ = step
  assert p.class_mask.shape[0] == 8 and int(p.class_mask.sum()) == 5   # classes padded
  assert f.sharding.spec[0] == "data" and len(f.sharding.device_set) == 8


def test_hotflip_scores_match_finite_differences(step):
  """One sharded search step against single-device computations of the loss."""
  p, trig, _, out, loss = step
  table = np.asarray(p.table)
  e0 = table[trig]
  np.testing.assert_allclose(float(out["start_loss"]), loss(e0), rtol=1e-5)
  grad = np.asarray(out["grad"])
  j = int(out["position"])
  rng = np.random.default_rng(0)
  for pos in (j, (j + 1) % 4):
    pred = np.asarray(autoprompt.hotflip_scores(p.table, grad[pos], int(trig[pos])))
    assert pred[trig[pos]] == 0.0
    for v in rng.choice(49000, 3, replace=False):
      # Directional derivative along E[v] - E[t_j]: the first-order swap estimate.
      d = np.zeros_like(e0)
      d[pos] = table[v] - table[trig[pos]]
      eps = 1e-2
      fd = (loss(e0 + eps * d) - loss(e0 - eps * d)) / (2 * eps)
      assert abs(fd - pred[v]) <= 0.02 * abs(pred[v]) + 2e-3, (pos, v, fd, pred[v])


def test_search_step_evaluates_the_best_candidates_exactly(step):
  # Candidates: the best HotFlip estimates at the drawn position (special tokens and the
  # current one excluded), each evaluated exactly; the best kept only if it is better.
  p, trig, _, out, loss = step
  table = np.asarray(p.table)
  grad = np.asarray(out["grad"])
  j = int(out["position"])
  pred = np.array(autoprompt.hotflip_scores(p.table, grad[j], int(trig[j])))
  pred[[49406, 49407, trig[j]]] = np.inf
  want = np.argsort(pred, kind="stable")[:CFG.num_candidates]
  cands = np.asarray(out["candidates"])
  np.testing.assert_array_equal(np.sort(cands), np.sort(want))
  np.testing.assert_allclose(np.asarray(out["predicted"]), pred[cands], rtol=1e-5, atol=1e-6)
  for c, lc in zip(cands[:3], np.asarray(out["candidate_losses"])[:3]):
    tc = trig.copy()
    tc[j] = c
    np.testing.assert_allclose(lc, loss(table[tc]), rtol=1e-5)


def test_search_step_keeps_the_best_candidate_only_if_better(step):
  _, trig, _, out, _ = step
  j = int(out["position"])
  cands = np.asarray(out["candidates"])
  best = int(np.argmin(out["candidate_losses"]))
  if bool(out["accepted"]):
    assert out["candidate_losses"][best] < out["start_loss"]
    assert int(out["trigger"][j]) == int(cands[best])
  else:
    np.testing.assert_array_equal(out["trigger"], trig)


def test_search_never_raises_the_loss():
  res = tl.searched()[3]
  # All 80 rows are every iteration's batches, so an accepted swap never raises the loss.
  for r in range(CFG.restarts):
    seq = np.concatenate([res.start_losses[r, :1], res.losses[r]])
    assert np.all(np.diff(seq) <= 1e-5), seq
    np.testing.assert_allclose(res.start_losses[r, 1:], res.losses[r, :-1], atol=1e-5)
  assert res.accepted.sum() >= 3


def test_search_logs_every_iteration_from_the_init_prompt():
  res = tl.searched()[3]
  assert tuple(res.log[0, 0]) == tl.START                 # restart 0 from 'a photo of a'
  counts = sum(c for _, c in res.ranked)
  assert counts == CFG.restarts * CFG.iterations          # every logged iteration counted


def test_search_raises_training_accuracy(t):
  _, feats, labels, res = tl.searched()
  start = heads.trigger_head(t.model, [tl.START], tl.NAMES)
  learned = heads.trigger_head(t.model, [res.ranked[0][0]], tl.NAMES)
  acc0 = heads.accuracy(start, feats, labels)
  acc1 = heads.accuracy(learned, feats, labels)
  assert acc1 >= acc0 + 0.1, (acc0, acc1)


@pytest.mark.parametrize("seed,same", [(0, True), (1, False)])
def test_search_is_determined_by_the_seed(t, seed, same):
  # Same seed: the same search; another seed: another one.
  _, feats, labels, res = tl.searched()
  again = autoprompt.search(t.model, feats, labels, tl.NAMES, tl.autoprompt_config(seed=seed),
                            mesh=tl.mesh8())
  assert np.array_equal(again.log, res.log) == same


def test_config_refuses_zero_iterations():
  with pytest.raises(ValueError, match="iterations must be a positive integer"):
    autoprompt.AutoPromptConfig(iterations=0)


def test_search_refuses_bad_input(t):
  m = t.model
  feats, labels = t.feats[:10], t.labels[:10]
  with pytest.raises(ValueError, match="init 'a photo' is 2 tokens"):
    autoprompt.search(m, feats, labels, tl.NAMES,
                      autoprompt.AutoPromptConfig(init="a photo", iterations=1))
  with pytest.raises(ValueError, match="labels span"):
    autoprompt.search(m, feats, labels + 5, tl.NAMES, CFG)
  with pytest.raises(ValueError, match="longer than the model's context length"):
    autoprompt.search(m, feats, labels, ["one " * 73] * 5, CFG)
