"""RoZ's head training with BatchNorm in train mode equals PyTorch's model.train() loop."""
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxbench import models
from jaxbench.heads import artifact, bn_train, features, train_head
from jaxbench.heads import model as _probe_model  # noqa: F401  (registers probe:PATH)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
  import timm
  from timm.models._hub import save_for_hf
  torch.manual_seed(0)
  ref = timm.create_model("resnet18.tv_in1k", pretrained=False, layers=[1, 1, 1, 1],
                          num_classes=10)
  with torch.no_grad():
    for name, t in ref.named_buffers():
      if name.endswith("running_mean"):
        t.copy_(0.1 * torch.randn_like(t))
      elif name.endswith("running_var"):
        t.copy_(torch.rand_like(t) + 0.5)
  ref.eval()
  d = str(tmp_path_factory.mktemp("rn"))
  save_for_hf(ref, d, safe_serialization=True, model_args=dict(layers=[1, 1, 1, 1]))
  return models.load(d), ref


def test_matches_pytorch_train_mode(resnet, tmp_path):
  model, ref = resnet
  rng = np.random.default_rng(0)
  n, k = 20, 4
  imgs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  y = rng.integers(0, k, n)
  timgs = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
  ty = rng.integers(0, k, 8)
  r = train_head.recipe("roz", epochs=3, batch_size=8, lr=0.05)
  w0, b0 = train_head.torch_linear_init(k, 512, seed=3)
  perms = [np.random.default_rng([3, e]).permutation(n) for e in range(r.epochs)]
  res = bn_train.train(model, imgs, y, k, r, seed=3, eval_sets={"test": (timgs, ty)},
                       permutations=perms)
  # PyTorch: fc = Linear(512, k), only fc optimised, model.train() while training.
  ref.reset_classifier(k)
  with torch.no_grad():
    ref.fc.weight.copy_(torch.from_numpy(w0))
    ref.fc.bias.copy_(torch.from_numpy(b0))
  for p in ref.parameters():
    p.requires_grad_(False)
  for p in ref.fc.parameters():
    p.requires_grad_(True)
  opt = torch.optim.AdamW(ref.fc.parameters(), lr=0.05, weight_decay=0.0)
  mean = torch.tensor(model.preprocess.mean).reshape(1, 3, 1, 1)
  std = torch.tensor(model.preprocess.std).reshape(1, 3, 1, 1)
  prep = lambda a: (torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float32)) / 255 - mean) / std
  prev, lr, snaps = None, 0.05, []
  for perm in perms:
    ref.train()
    losses = []
    for s in range(0, n, 8):
      idx = perm[s:s + 8]
      opt.zero_grad()
      loss = torch.nn.functional.cross_entropy(ref(prep(imgs[idx])),
                                               torch.from_numpy(y[idx].astype(np.int64)))
      loss.backward()
      opt.step()
      losses.append(loss.item())
    el = float(np.mean(losses))
    if prev is not None and el > prev:
      lr = max(lr / 1.5, 1e-5)
      for g in opt.param_groups:
        g["lr"] = lr
    prev = el
    ref.eval()
    with torch.no_grad():
      acc = float((ref(prep(timgs)).argmax(-1).numpy() == ty).mean())
    snaps.append((el, acc, ref.fc.weight.detach().numpy().copy(),
                  ref.bn1.running_mean.numpy().copy(), ref.layer4[0].bn2.running_var.numpy().copy(),
                  {k_: v.clone() for k_, v in ref.state_dict().items()}))
  for row, (el, acc, *_) in zip(res.history, snaps):
    assert row["loss"] == pytest.approx(el, abs=1e-4)
    assert row["test_accuracy"] == pytest.approx(acc)
  best = [s[1] for s in snaps].index(max(s[1] for s in snaps))
  assert res.best_epoch == best
  np.testing.assert_allclose(res.weight, snaps[best][2], atol=1e-4)
  np.testing.assert_allclose(res.bn["bn1/mean"], snaps[best][3], atol=1e-4)
  np.testing.assert_allclose(res.bn["layer4_0/bn2/var"], snaps[best][4], rtol=1e-4, atol=1e-4)
  # The statistics moved (train mode did something) and the record says so.
  assert np.abs(res.bn["bn1/mean"] - np.asarray(model.params["net"]["bn1"]["mean"])).max() > 1e-3
  assert res.recipe["batchnorm"] == "train" and res.recipe["bn_momentum"] == 0.1
  # The head file carries the new statistics: reloaded, it is PyTorch's best-epoch model.
  art = artifact.HeadArtifact(
      weight=res.weight, bias=res.bias, backbone=model.name,
      preprocess=artifact.preprocess_record(model.preprocess),
      features=features.identity(model), label_space="four", recipe=res.recipe,
      backbone_state=res.bn)
  path = str(tmp_path / "bn_head.safetensors")
  artifact.save(art, path)
  assert artifact.load(path).backbone_state.keys() == res.bn.keys()
  m = models.load(f"probe:{path}")
  ref.load_state_dict(snaps[best][5])
  ref.eval()
  with torch.no_grad():
    want = ref(prep(timgs)).numpy()
  got = np.asarray(m.apply(m.params, jnp.asarray(timgs / 255.0, jnp.float32)))
  np.testing.assert_allclose(got, want, atol=1e-4)
