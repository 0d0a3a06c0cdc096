"""Learned-prompt artifacts: RoZ's logs, AutoPrompt/CoOp files and their reload."""
import json

import numpy as np
import pytest

import clip_auto_testlib as tl
from jaxbench.zeroshot.learned import artifacts, heads, layout

@pytest.fixture(scope="module")
def t():
  return tl.trained()


def test_read_prompt_log_ranks_by_frequency(tmp_path):
  log = tmp_path / "ViT-B_32.log"
  log.write_text(tl.ROZ_LOG)
  ranked = artifacts.read_prompt_log(str(log))
  assert ranked == [((1848, 1664, 653, 912), 3), ((7395, 16694, 7811, 320), 2),
                    ((2689, 1381, 34383, 550), 1), ((320, 1125, 539, 320), 1)]


@pytest.mark.parametrize("text,match", [
    ("1848 1664 653 912\n1848 awesome 653 912\n",
     "bad.log:2: expected whitespace-separated token ids"),
    ("1848 1664 653 912\n1848 1664 653\n", r"mixes prompts of \[3, 4\] tokens")])
def test_read_prompt_log_refuses_bad_lines(tmp_path, text, match):
  bad = tmp_path / "bad.log"
  bad.write_text(text)
  with pytest.raises(ValueError, match=match):
    artifacts.read_prompt_log(str(bad))


@pytest.fixture(scope="module")
def saved_prompts(tmp_path_factory):
  split, _, _, res = tl.searched()
  path = artifacts.save_prompts(
      str(tmp_path_factory.mktemp("ap") / "p.json"), model=tl.trained().model,
      ranked=res.ranked, suffix="{}", top_n=2, logit_scale=100.0,
      data={"ids": list(split.ids)}, seed=0, steps=20, settings={}, metrics={},
      losses=res.mean_loss)
  return path, res


def test_saved_prompts_record_ids_and_text(saved_prompts):
  path, res = saved_prompts
  doc = json.load(open(path))
  assert doc["prompts"][0]["ids"] == list(res.ranked[0][0])
  assert doc["prompts"][0]["text"] == layout.decode(res.ranked[0][0])


def test_saved_prompts_reload_to_the_identical_head(t, saved_prompts):
  path, res = saved_prompts
  want = heads.trigger_head(t.model, [p for p, _ in res.ranked[:2]], tl.NAMES)
  got = heads.load_learned_head(t.model, path, tl.NAMES)
  np.testing.assert_array_equal(got.weights, want.weights)
  assert got.logit_scale == 100.0 and got.key == want.key
  assert len(got.templates) == 2 and got.templates[0].endswith("{}")


def _save_context(t, path, ctx, split_ids=()):
  return artifacts.save_context(str(path), model=t.model, ctx=ctx, classnames=tl.NAMES,
                                suffix="{}.", logit_scale="model",
                                data={"ids": list(split_ids)}, seed=0, steps=0, settings={},
                                metrics={})


def test_saved_context_reloads_to_the_identical_head(t, tmp_path):
  split, _, _, res = tl.coop_trained()
  learned = heads.context_head(t.model, res.ctx, tl.NAMES)
  path = _save_context(t, tmp_path / "coop.json", res.ctx, split.ids)
  got = heads.load_learned_head(t.model, path, tl.NAMES)
  np.testing.assert_array_equal(got.weights, learned.weights)
  assert got.key == learned.key and got.logit_scale == learned.logit_scale


def test_tampered_context_is_refused(t, tmp_path):
  res = tl.coop_trained()[3]
  path = _save_context(t, tmp_path / "coop.json", res.ctx)
  np.savez(str(tmp_path / "coop.npz"), ctx=res.ctx + 1)
  with pytest.raises(ValueError, match="do not match the sha256"):
    heads.load_learned_head(t.model, path, tl.NAMES)


def test_missing_artifact_is_named(t, tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    heads.load_learned_head(t.model, str(tmp_path / "none.json"), tl.NAMES)


def test_unknown_method_is_named(t, tmp_path):
  (tmp_path / "x.json").write_text(json.dumps({"method": "magic"}))
  with pytest.raises(ValueError, match="unknown method 'magic'"):
    heads.load_learned_head(t.model, str(tmp_path / "x.json"), tl.NAMES)
