"""AutoPrompt (RoZ's CLIP-Auto): HotFlip scores, search, heads, RoZ logs, config run."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

import clip_auto_testlib as tl
from jaxbench import parallel
from jaxbench.zeroshot import autoprompt, clip_auto

# Small enough to run in well under a second per search. Every search here runs on
# the 8 simulated devices (image rows and class prompts sharded over 'data'): one
# compilation of the search step serves all tests.
CFG = autoprompt.AutoPromptConfig(num_tokens=4, iterations=10, restarts=2, num_candidates=16,
                                  batch_size=16, accumulation_steps=5, top_n=1, seed=0)
MESH = parallel.make_mesh(8, 1)


@pytest.fixture(scope="module")
def t():
  return tl.trained()


def _torch_text(ref, ids):
  with torch.no_grad():
    z = ref.get_text_features(input_ids=torch.tensor(np.asarray(ids), dtype=torch.long))
  z = getattr(z, "pooler_output", z).numpy()
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_search_raises_training_accuracy_is_deterministic_and_reloads(t, tmp_path):
  split, feats, labels = tl.kshot_features(t, k=16)
  res = autoprompt.search(t.model, feats, labels, tl.NAMES, CFG, mesh=MESH)
  # All 80 rows are every iteration's batches, so an accepted swap never raises the loss.
  for r in range(CFG.restarts):
    seq = np.concatenate([res.start_losses[r, :1], res.losses[r]])
    assert np.all(np.diff(seq) <= 1e-5), seq
    np.testing.assert_allclose(res.start_losses[r, 1:], res.losses[r, :-1], atol=1e-5)
  assert res.accepted.sum() >= 3
  assert tuple(res.log[0, 0]) == tl.START                 # restart 0 from 'a photo of a'
  counts = sum(c for _, c in res.ranked)
  assert counts == CFG.restarts * CFG.iterations          # every logged iteration counted
  start = clip_auto.trigger_head(t.model, [tl.START], tl.NAMES)
  learned = clip_auto.trigger_head(t.model, [res.ranked[0][0]], tl.NAMES)
  acc0 = clip_auto.accuracy(start, feats, labels)
  acc1 = clip_auto.accuracy(learned, feats, labels)
  assert acc1 >= acc0 + 0.1, (acc0, acc1)

  # Same seed: the same search; another seed: another one.
  again = autoprompt.search(t.model, feats, labels, tl.NAMES, CFG, mesh=MESH)
  np.testing.assert_array_equal(again.log, res.log)
  other = autoprompt.search(t.model, feats, labels, tl.NAMES,
                            autoprompt.AutoPromptConfig(**{**CFG.__dict__, "seed": 1}),
                            mesh=MESH)
  assert not np.array_equal(other.log, res.log)

  # Saved prompts reload to the identical head.
  path = clip_auto.save_prompts(
      str(tmp_path / "p.json"), model=t.model, ranked=res.ranked, suffix="{}", top_n=2,
      logit_scale=100.0, data={"ids": list(split.ids)}, seed=0, steps=20,
      settings={}, metrics={}, losses=res.mean_loss)
  doc = json.load(open(path))
  assert doc["prompts"][0]["ids"] == list(res.ranked[0][0])
  assert doc["prompts"][0]["text"] == clip_auto.decode(res.ranked[0][0])
  want = clip_auto.trigger_head(t.model, [p for p, _ in res.ranked[:2]], tl.NAMES)
  got = clip_auto.load_learned_head(t.model, path, tl.NAMES)
  np.testing.assert_array_equal(got.weights, want.weights)
  assert got.logit_scale == 100.0 and got.key == want.key
  assert len(got.templates) == 2 and got.templates[0].endswith("{}")


def test_hotflip_scores_match_finite_differences_and_step(t):
  """One sharded search step against single-device computations of the loss."""
  _, feats, labels = tl.kshot_features(t, k=16)
  p = autoprompt.make_problem(t.model, feats, labels, tl.NAMES, CFG, MESH)
  assert p.class_mask.shape[0] == 8 and int(p.class_mask.sum()) == 5   # classes padded
  net = t.model.params["net"]
  table = np.asarray(p.table)
  trig = np.asarray(tl.START, np.int32)
  krows, kpos = autoprompt.iteration_keys(0, 0, 3)
  f, l, w = autoprompt.iteration_rows(p, krows, CFG)
  assert f.sharding.spec[0] == "data" and len(f.sharding.device_set) == 8
  out = autoprompt.search_step(t.model.arch, net, p.table, p.allowed, p.ids, p.eot,
                               p.class_mask, trig, f, l, w, p.scale, p.bias, kpos,
                               num_candidates=CFG.num_candidates, chunk=0, mesh=MESH)
  # Reference: the loss on one device, over the 5 real classes only.
  single = clip_auto.make_layout(t.model, tl.NAMES, 4)
  fh, lh, wh = (np.asarray(x) for x in (f, l, w))

  def loss(emb):
    return float(autoprompt.trigger_loss(t.model.arch, net, single.ids, single.eot,
                                         np.ones(5, bool), jnp.asarray(emb, jnp.float32),
                                         fh, lh, wh, p.scale, p.bias)[0])

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

  # Candidates: the best HotFlip estimates at the drawn position (special tokens and the
  # current one excluded), each evaluated exactly; the best kept only if it is better.
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
  best = int(np.argmin(out["candidate_losses"]))
  if bool(out["accepted"]):
    assert out["candidate_losses"][best] < out["start_loss"]
    assert int(out["trigger"][j]) == int(cands[best])
  else:
    np.testing.assert_array_equal(out["trigger"], trig)


def test_roz_log_head_matches_pytorch_and_decoding(t, tmp_path):
  assert clip_auto.decode([1848, 1664, 653, 912]) == "awesome cooingled"
  assert clip_auto.decode([320, 1125, 539, 320]) == "a photo of a"
  assert clip_auto.decode([23703, 1150, 316, 3628]) == "annually ates ] interesting"
  log = tmp_path / "ViT-B_32.log"
  log.write_text("1848 1664 653 912\n7395 16694 7811 320\n1848 1664 653 912\n\n"
                 "2689 1381 34383 550\n7395 16694 7811 320\n1848 1664 653 912\n")
  ranked = clip_auto.read_prompt_log(str(log))
  assert ranked == [((1848, 1664, 653, 912), 3), ((7395, 16694, 7811, 320), 2),
                    ((2689, 1381, 34383, 550), 1), ((320, 1125, 539, 320), 1)]
  head = clip_auto.load_learned_head(t.model, str(log), tl.NAMES, top_n=2)
  assert head.logit_scale == 100.0 and head.template_set == "learned:ViT-B_32.log:top2"
  # Reference: PyTorch on the same weights, prompts assembled by hand.
  cls = [t.model.tokenize([n])[0] for n in tl.NAMES]
  rows = []
  for prompt in ((1848, 1664, 653, 912), (7395, 16694, 7811, 320)):
    for c in cls:
      body = c[1:np.nonzero(c)[0][-1] + 1]          # class tokens and EOT
      ids = np.zeros(77, np.int64)
      ids[:1 + 4 + len(body)] = [49406, *prompt, *body]
      rows.append(ids)
  z = _torch_text(t.torch_ref, np.stack(rows)).reshape(2, len(tl.NAMES), -1).mean(0)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  np.testing.assert_allclose(head.weights, z, atol=2e-5)
  # The same head through the runner-facing hook.
  via = clip_auto.head_for(t.model, list(tl.NAMES), f"learned:{log}:2")
  np.testing.assert_array_equal(via.weights, head.weights)


def test_bad_input_is_named(t, tmp_path):
  m = t.model
  with pytest.raises(ValueError, match="longer than the model's context length 77"):
    clip_auto.trigger_head(m, [tl.START], ["zero", "word " * 75])
  with pytest.raises(ValueError, match=r"unknown token ids \[50000\]"):
    clip_auto.trigger_head(m, [(320, 50000, 539, 320)], tl.NAMES)
  with pytest.raises(ValueError, match=r"unknown token ids \[-3\]"):
    clip_auto.trigger_head(m, [(320, -3, 539, 320)], tl.NAMES)
  with pytest.raises(ValueError, match="start/end-of-text tokens"):
    clip_auto.trigger_head(m, [(320, 49407, 539, 320)], tl.NAMES)
  bad = tmp_path / "bad.log"
  bad.write_text("1848 1664 653 912\n1848 awesome 653 912\n")
  with pytest.raises(ValueError, match="bad.log:2: expected whitespace-separated token ids"):
    clip_auto.read_prompt_log(str(bad))
  bad.write_text("1848 1664 653 912\n1848 1664 653\n")
  with pytest.raises(ValueError, match=r"mixes prompts of \[3, 4\] tokens"):
    clip_auto.read_prompt_log(str(bad))
  with pytest.raises(ValueError, match="does not exist"):
    clip_auto.load_learned_head(m, str(tmp_path / "none.json"), tl.NAMES)
  (tmp_path / "x.json").write_text(json.dumps({"method": "magic"}))
  with pytest.raises(ValueError, match="unknown method 'magic'"):
    clip_auto.load_learned_head(m, str(tmp_path / "x.json"), tl.NAMES)
  with pytest.raises(ValueError, match="iterations must be a positive integer"):
    autoprompt.AutoPromptConfig(iterations=0)
  feats, labels = t.feats[:10], t.labels[:10]
  with pytest.raises(ValueError, match="init 'a photo' is 2 tokens"):
    autoprompt.search(m, feats, labels, tl.NAMES,
                      autoprompt.AutoPromptConfig(init="a photo", iterations=1))
  with pytest.raises(ValueError, match="labels span"):
    autoprompt.search(m, feats, labels + 5, tl.NAMES, CFG)
  with pytest.raises(ValueError, match="longer than the model's context length"):
    autoprompt.search(m, feats, labels, ["one " * 73] * 5, CFG)


def test_config_learns_then_evaluates_through_the_runner(t, tmp_path):
  """configs/clip_auto.py: k-shot split of an image folder, search on 8 devices, then the
  runner evaluates with the learned head (through the ``head_for`` hook)."""
  import importlib.util
  from jaxbench import suites
  root = tmp_path / "train"
  for c, name in enumerate(tl.NAMES):
    (root / name).mkdir(parents=True)
    for i in np.nonzero(t.labels == c)[0][:20]:
      Image.fromarray(t.images[i]).save(root / name / f"{i:04d}.png")
  model_dir = tl.save_trained_dir(t, str(tmp_path / "model"))
  spec = importlib.util.spec_from_file_location(
      "clip_auto_config", os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                                       "clip_auto.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  config = mod.get_config("autoprompt")
  config.models = (model_dir,)
  config.datasets = (f"image_folder(root='{root}')",)
  config.clip_auto.train = f"image_folder(root='{root}')"
  config.clip_auto.classnames = "dataset"
  config.clip_auto.autoprompt.update(dict(iterations=10, restarts=2, num_candidates=16,
                                          candidate_chunk=0, batch_size=16,
                                          accumulation_steps=5, top_n=1))
  config.batch_size = 16
  workdir = str(tmp_path / "run")
  lines = []
  paths = clip_auto.learn(config, workdir, print_fn=lines.append)
  path = paths[model_dir]
  doc = json.load(open(path))
  assert doc["method"] == "autoprompt" and doc["data"]["k"] == 16
  assert len(doc["data"]["ids"]) == 80 and doc["data"]["ids"][0].startswith("four/")
  assert doc["model"]["name"] == model_dir and doc["steps"] == 20
  assert doc["metrics"]["train_acc_learned"] >= doc["metrics"]["train_acc_start"] + 0.1
  assert "->" in lines[0]
  clip_auto.learn(config, workdir, print_fn=lines.append)       # kept, not redone
  assert "keeping it" in lines[-1]

  # Evaluation: suites.run learns (kept from above) then evaluates with the learned head.
  rows = suites.run(config, workdir, print_fn=lambda *a: None)
  top1 = [r for r in rows if r["metric"] == "top1"][0]
  assert top1["n"] == 100 and "templates=learned:auto" in top1["model"]
  assert top1["model_info"]["head"]["templates"] == f"learned:{os.path.basename(path)}:top1"
  # The same number from the learned head on the same images (sorted folder labels).
  names = sorted(tl.NAMES)
  head = clip_auto.load_learned_head(t.model, path, names)
  keep = np.concatenate([np.nonzero(t.labels == c)[0][:20] for c in range(5)])
  labels = np.asarray([names.index(n) for n in tl.NAMES])[t.labels[keep]]
  np.testing.assert_allclose(top1["value"], clip_auto.accuracy(head, t.feats[keep], labels),
                             atol=0.011)
  acc0 = clip_auto.accuracy(clip_auto.trigger_head(t.model, [tl.START], names),
                            t.feats[keep], labels)
  assert top1["value"] >= acc0 + 0.05, (acc0, top1["value"])
