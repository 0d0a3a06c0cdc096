"""The learners' shared loss: zero-shot cross-entropy against PyTorch, classes padded."""
import numpy as np
import torch

from jaxbench.zeroshot.learned import layout, tower


def _rows(seed=0, n=6, k=3, d=8):
  rng = np.random.default_rng(seed)
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  return (unit(rng.normal(size=(k, d))).astype(np.float32),
          unit(rng.normal(size=(n, d))).astype(np.float32),
          rng.integers(0, k, n).astype(np.int32))


def test_zeroshot_loss_matches_torch_cross_entropy():
  text, feats, labels = _rows()
  loss, acc = tower.zeroshot_loss(text, feats, labels, np.ones(6, np.float32), 100.0, bias=-2.0)
  logits = torch.tensor(100.0 * feats @ text.T - 2.0)
  want = torch.nn.functional.cross_entropy(logits, torch.tensor(labels, dtype=torch.long))
  np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)
  np.testing.assert_allclose(float(acc), float((logits.argmax(1).numpy() == labels).mean()))


def test_padded_classes_and_rows_do_not_count():
  text, feats, labels = _rows()
  # A fourth (padded) class that every row would prefer, and two padded rows.
  padded_text = np.concatenate([text, feats[:1]])
  padded_feats = np.concatenate([feats, feats[:2]])
  padded_labels = np.concatenate([labels, [0, 0]]).astype(np.int32)   # as the learners pad
  weights = np.r_[np.ones(6), np.zeros(2)].astype(np.float32)
  got = tower.zeroshot_loss(padded_text, padded_feats, padded_labels, weights, 100.0,
                            class_mask=np.array([True, True, True, False]))
  want = tower.zeroshot_loss(text, feats, labels, np.ones(6, np.float32), 100.0)
  np.testing.assert_allclose([float(x) for x in got], [float(x) for x in want], rtol=1e-6)


def test_pad_classes_repeats_the_first_prompt_and_masks_it():
  lay = layout.PromptLayout(ids=np.arange(15, dtype=np.int32).reshape(3, 5),
                            eot=np.array([2, 3, 4], np.int32), num_slots=1,
                            classnames=("a", "b", "c"), suffix="{}", specials=(1, 2),
                            vocab_size=20, context_length=5)
  ids, eot, mask = tower.pad_classes(lay, 4)
  assert ids.shape == (4, 5) and eot.tolist() == [2, 3, 4, 2]
  np.testing.assert_array_equal(ids[3], lay.ids[0])
  assert mask.tolist() == [True, True, True, False]
