"""Learned prompts as zero-shot heads: RoZ logs against PyTorch, the runner's hook,
CoOp contexts on other classes, bad prompts named."""
import numpy as np
import pytest
import torch

import clip_auto_testlib as tl
from jaxbench.zeroshot.learned import artifacts, heads

@pytest.fixture(scope="module")
def t():
  return tl.trained()


@pytest.fixture(scope="module")
def roz_log(tmp_path_factory):
  log = tmp_path_factory.mktemp("roz") / "ViT-B_32.log"
  log.write_text(tl.ROZ_LOG)
  return log


def _torch_text(ref, ids):
  with torch.no_grad():
    z = ref.get_text_features(input_ids=torch.tensor(np.asarray(ids), dtype=torch.long))
  z = getattr(z, "pooler_output", z).numpy()
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_roz_log_head_matches_pytorch(t, roz_log):
  head = heads.load_learned_head(t.model, str(roz_log), tl.NAMES, top_n=2)
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


def test_head_for_loads_learned_path_with_count(t, roz_log):
  # The same head through the runner-facing hook.
  head = heads.load_learned_head(t.model, str(roz_log), tl.NAMES, top_n=2)
  via = heads.head_for(t.model, list(tl.NAMES), f"learned:{roz_log}:2")
  np.testing.assert_array_equal(via.weights, head.weights)


@pytest.mark.parametrize("names,trigger,match", [
    (["zero", "word " * 75], tl.START, "longer than the model's context length 77"),
    (tl.NAMES, (320, 50000, 539, 320), r"unknown token ids \[50000\]"),
    (tl.NAMES, (320, -3, 539, 320), r"unknown token ids \[-3\]"),
    (tl.NAMES, (320, 49407, 539, 320), "start/end-of-text tokens")])
def test_trigger_head_refuses_bad_prompts(t, names, trigger, match):
  with pytest.raises(ValueError, match=match):
    heads.trigger_head(t.model, [trigger], names)


def test_shared_context_transfers_to_other_classes(t, tmp_path):
  res = tl.coop_trained()[3]
  path = artifacts.save_context(str(tmp_path / "coop.json"), model=t.model, ctx=res.ctx,
                                classnames=tl.NAMES, suffix="{}.", logit_scale="model",
                                data={}, seed=0, steps=res.steps, settings={}, metrics={})
  other = heads.load_learned_head(t.model, path, ["five", "six"])
  assert other.weights.shape == (2, 16)


def test_class_specific_context_refuses_other_classes(t, tmp_path):
  ctx = np.zeros((5, 4, 32), np.float32)
  path = artifacts.save_context(str(tmp_path / "csc.json"), model=t.model, ctx=ctx,
                                classnames=tl.NAMES, suffix="{}.", logit_scale="model",
                                data={}, seed=0, steps=0, settings={}, metrics={})
  with pytest.raises(ValueError, match="class-specific context vectors were learned for other"):
    heads.load_learned_head(t.model, path, ["a", "b", "c", "d", "e"])


def test_context_of_another_width_is_refused(t):
  with pytest.raises(ValueError, match=r"do not fit .* expected \(M, 32\)"):
    heads.context_head(t.model, np.zeros((4, 48), np.float32), tl.NAMES)
