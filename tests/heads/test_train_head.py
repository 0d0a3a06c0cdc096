"""Head-only training: equal to PyTorch AdamW + RoZ's schedule; the lr rule and selection."""
import numpy as np
import pytest
import torch

from jaxbench.heads import train_head


def _torch_train(x, y, w0, b0, perms, r, eval_x, eval_y):
  """RoZ's train_clean_model loop on fixed features: AdamW, lr/1.5 on a rising epoch loss."""
  head = torch.nn.Linear(x.shape[1], w0.shape[0])
  with torch.no_grad():
    head.weight.copy_(torch.from_numpy(w0))
    head.bias.copy_(torch.from_numpy(b0))
  opt = torch.optim.AdamW(head.parameters(), lr=r.lr, weight_decay=r.weight_decay)
  xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
  prev, out = None, []
  for perm in perms:
    losses = []
    for s in range(0, len(perm), r.batch_size):
      idx = torch.from_numpy(perm[s:s + r.batch_size])
      opt.zero_grad()
      loss = torch.nn.functional.cross_entropy(head(xt[idx]), yt[idx])
      loss.backward()
      opt.step()
      losses.append(loss.item())
    epoch_loss = float(np.mean(losses))
    if prev is not None and epoch_loss > prev:
      for g in opt.param_groups:
        g["lr"] = max(g["lr"] / 1.5, 1e-5)
    prev = epoch_loss
    with torch.no_grad():
      acc = (head(torch.from_numpy(eval_x)).argmax(-1).numpy() == eval_y).mean()
    out.append((head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy(),
                epoch_loss, acc))
  return out


@pytest.fixture(scope="module")
def roz_random_labels():
  """(our training result, the PyTorch reference history) of RoZ's recipe on random labels."""
  rng = np.random.default_rng(0)
  n, d, k = 200, 24, 5
  x = rng.normal(size=(n, d)).astype(np.float32) * 2.0
  y = rng.integers(0, k, n)
  tx = rng.normal(size=(60, d)).astype(np.float32)
  ty = rng.integers(0, k, 60)
  # RoZ's lr on random labels: the epoch loss rises (epochs 3 and 5), the lr rule fires.
  r = train_head.recipe("roz", epochs=8, weight_decay=0.01, batchnorm="frozen")
  w0, b0 = train_head.torch_linear_init(k, d, seed=1)
  perms = [np.random.default_rng([1, e]).permutation(n) for e in range(r.epochs)]
  ref = _torch_train(x, y, w0, b0, perms, r, tx, ty)
  res = train_head.train(x, y, k, r, seed=1, eval_sets={"test": (tx, ty)})  # default init/perms
  return res, ref


def test_epoch_losses_and_accuracies_match_pytorch_adamw(roz_random_labels):
  res, ref = roz_random_labels
  for row, (_, _, loss, acc) in zip(res.history, ref):
    assert row["loss"] == pytest.approx(loss, abs=1e-5)
    assert row["test_accuracy"] == pytest.approx(acc, abs=1e-12)


def test_lr_rule_fires_on_noisy_features(roz_random_labels):
  res, _ = roz_random_labels
  # The lr rule fired at least once on these noisy features (else the check is vacuous).
  assert len({row["lr"] for row in res.history}) > 1


def test_best_epoch_weights_match_pytorch(roz_random_labels):
  res, ref = roz_random_labels
  best = int(np.argmax([a for *_, a in ref]))
  assert res.best_epoch == best
  np.testing.assert_allclose(res.weight, ref[best][0], atol=1e-5)
  np.testing.assert_allclose(res.bias, ref[best][1], atol=1e-5)


def test_recipe_records_selection_and_batchnorm_notes(roz_random_labels):
  res, _ = roz_random_labels
  assert res.recipe["select"] == "test" and "test set" in res.recipe["selection_note"]
  assert res.recipe["batchnorm"] == "frozen" and "train mode" in res.recipe["batchnorm_note"]


def test_lr_rule_hand_trace():
  losses = [1.0, 0.8, 0.9, 0.85, 0.95, 0.96, 0.5]
  lr, prev, trace = 0.02, None, []
  for l in losses:
    trace.append(lr)
    lr, prev = train_head.next_lr(lr, prev, l, 1.5, 1e-5), l
  # Rises after epochs 2, 4 and 5 (0-based): the lr of epochs 3, 5 and 6 drops.
  expected = [0.02, 0.02, 0.02, 0.02 / 1.5, 0.02 / 1.5, 0.02 / 1.5**2, 0.02 / 1.5**3]
  np.testing.assert_allclose(trace, expected, rtol=1e-12)
  assert train_head.next_lr(1.2e-5, 1.0, 2.0, 1.5, 1e-5) == 1e-5
  assert train_head.next_lr(1e-5, 1.0, 2.0, 1.5, 1e-5) == 1e-5


def _separable():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(64, 6)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  ex = rng.normal(size=(40, 6)).astype(np.float32)
  ey = (ex[:, 0] > 0).astype(np.int32)
  return x, y, ex, ey


def test_roz_recipe_selects_on_test():
  x, y, ex, ey = _separable()
  res = train_head.train(x, y, 2, train_head.recipe("roz", epochs=6, lr=0.05,
                                                    batchnorm="frozen"), seed=0,
                         eval_sets={"test": (ex, ey), "val": (ex[:20], ey[:20])})
  accs = [row["test_accuracy"] for row in res.history]
  assert res.best_epoch == accs.index(max(accs))   # first epoch with the best test accuracy


def test_clean_recipe_selects_on_val():
  x, y, ex, ey = _separable()
  res_v = train_head.train(x, y, 2, train_head.recipe("clean", epochs=6, lr=0.05), seed=0,
                           eval_sets={"test": (ex, ey), "val": (ex[:20], ey[:20])})
  vaccs = [row["val_accuracy"] for row in res_v.history]
  assert res_v.best_epoch == vaccs.index(max(vaccs))


def test_selection_on_test_needs_a_test_set():
  x, y, _, _ = _separable()
  with pytest.raises(ValueError, match="selects on 'test' but no 'test' eval set"):
    train_head.train(x, y, 2, train_head.recipe("roz", epochs=1, batchnorm="frozen"))


def test_train_mode_batchnorm_needs_the_images():
  x, y, ex, ey = _separable()
  with pytest.raises(ValueError, match="train-mode BatchNorm needs the images"):
    train_head.train(x, y, 2, train_head.recipe("roz", epochs=1), eval_sets={"test": (ex, ey)})


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="unknown head-training preset"):
    train_head.recipe("sgd")
