"""Gradient attacks against independent references.

* FGSM on a logistic model is x + eps * sign(w) (analytic).
* FGSM, BIM, MI-FGSM, PGD (no random start) and DI-FGSM (diversity 0) agree
  with torchattacks on a Flax/PyTorch CNN pair with identical weights.
* DIM's resize-and-pad equals torchvision's resize + pad (RoZ's transform).
* RoZ's BIM in CLIP-normalised space (eps = 8/255 normalised, step 0.15 eps,
  10 steps, clamp [-1.8, 2.15], early stop) equals a NumPy transcription of
  RoZ's loop, example by example.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxbench import attacks
from jaxbench.attacks import gradient
from jaxbench.models.api import Preprocess
from attack_helpers import MEAN, STD, cnn_apply, cnn_pair, keys, linear_apply


@pytest.mark.parametrize("spec,match", [
    ("bim(step_ratio=0)", r"step_ratio=0"),
    ("dim(diversity_prob=1.5)", r"diversity_prob=1.5"),
])
def test_bad_hyperparameters_raise_clear_errors(spec, match):
  with pytest.raises(attacks.AttackInputError, match=match):
    attacks.get(spec)


def test_fgsm_linear_is_eps_sign_w():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(48,)).astype(np.float32)
  p = {"w": jnp.asarray(np.stack([np.zeros(48, np.float32), w], 1)), "b": jnp.zeros(2)}
  x = rng.uniform(0.1, 0.9, size=(8, 4, 4, 3)).astype(np.float32)
  y = np.array([0, 1] * 4)
  eps = 0.05
  r = attacks.get(f"fgsm(eps={eps})")(linear_apply, p, jnp.asarray(x), y, mask=np.ones(8, bool))
  # CE gradient of a logistic model: p1 * w for label 0, -(1 - p1) * w for label 1.
  logits = x.reshape(8, -1) @ np.asarray(p["w"])
  correct = logits.argmax(1) == y
  sign = np.where(y == 0, 1.0, -1.0)[:, None] * np.sign(w)[None]
  want = np.clip(x.reshape(8, -1) + eps * sign, 0, 1).reshape(x.shape)
  want[~correct] = x[~correct]     # misclassified examples are not attacked
  np.testing.assert_allclose(np.asarray(r.adv_images), want, atol=1e-6)
  assert correct.any() and (~correct).any()


@pytest.fixture(scope="module")
def cnn():
  params, net = cnn_pair(seed=0)
  mean = torch.tensor(MEAN).reshape(1, 3, 1, 1)
  std = torch.tensor(STD).reshape(1, 3, 1, 1)

  class Normalized(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.net = net

    def forward(self, x):
      return self.net((x - mean) / std)

  rng = np.random.default_rng(3)
  x = rng.uniform(size=(8, 8, 8, 3)).astype(np.float32)
  logits = np.asarray(cnn_apply(params, jnp.asarray(x)))
  with torch.no_grad():
    tl = Normalized()(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
  np.testing.assert_allclose(logits, tl, atol=1e-5)
  # Labels = clean predictions, so torchattacks and we attack the same examples.
  return params, Normalized().eval(), x, logits.argmax(1)


TORCH_PAIRS = [
    ("fgsm(eps=8/255)", lambda m: __import__("torchattacks").FGSM(m, eps=8 / 255)),
    ("bim(eps=8/255, steps=10, step_size=2/255, early_stop=False)",
     lambda m: __import__("torchattacks").BIM(m, eps=8 / 255, alpha=2 / 255, steps=10)),
    ("mim(eps=8/255, steps=10, step_size=2/255, early_stop=False)",
     lambda m: __import__("torchattacks").MIFGSM(m, eps=8 / 255, alpha=2 / 255, steps=10,
                                                 decay=1.0)),
    ("pgd(eps=8/255, steps=10, step_size=2/255, random_start=False)",
     lambda m: __import__("torchattacks").PGD(m, eps=8 / 255, alpha=2 / 255, steps=10,
                                              random_start=False)),
    ("dim(eps=8/255, steps=10, step_size=2/255, early_stop=False, momentum=0.0, "
     "diversity_prob=0.0)",
     lambda m: __import__("torchattacks").DIFGSM(m, eps=8 / 255, alpha=2 / 255, steps=10,
                                                 decay=0.0, diversity_prob=0.0)),
]


@pytest.mark.parametrize("spec,make", TORCH_PAIRS, ids=[p[0].split("(")[0] for p in TORCH_PAIRS])
def test_agrees_with_torchattacks(cnn, spec, make):
  params, net, x, y = cnn
  ours = np.asarray(attacks.get(spec)(cnn_apply, params, jnp.asarray(x), y).adv_images)
  ta = make(net)
  theirs = ta(torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(y)).numpy()
  theirs = theirs.transpose(0, 2, 3, 1)
  close = np.abs(ours - theirs) <= 1e-5
  # Elements whose gradient is numerically zero may flip sign: allow 0.1%.
  assert close.mean() >= 0.999, f"{spec}: {close.mean():.5f} of elements agree"
  assert np.abs(ours - x).max() > 1e-3      # the attack did something


def test_diversity_transform_matches_torch_resize_pad():
  # RoZ: torchvision resize (bilinear, tensors: no antialias) to rnd, then pad
  # left//2 on the top/left and the rest on the bottom/right; torchvision's
  # tensor resize is F.interpolate(bilinear, align_corners=False).
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(10, 10, 3)).astype(np.float32)
  f = jax.jit(jax.vmap(gradient.diverse))
  sides = np.array([9, 10, 9], np.int32)
  ours = np.asarray(f(jnp.asarray(np.stack([x] * 3)), jnp.asarray([True, True, False]),
                      jnp.asarray(sides)))
  for i, rnd in enumerate(sides[:2]):
    t = torch.from_numpy(x.transpose(2, 0, 1))[None]
    r = torch.nn.functional.interpolate(t, size=(rnd, rnd), mode="bilinear",
                                        align_corners=False, antialias=False)
    left = 10 - rnd
    r = torch.nn.functional.pad(r, [left // 2, left - left // 2, left // 2, left - left // 2])
    np.testing.assert_allclose(ours[i], r[0].numpy().transpose(1, 2, 0), atol=1e-5)
  np.testing.assert_array_equal(ours[2], x)         # not applied: the input itself
  # Draws: sides in [floor(0.9 * 10), 10], applied with the given probability.
  draws = jax.jit(jax.vmap(lambda k: gradient.diversity_params(k, 10, 0.5, 0.9)))(
      jax.random.split(jax.random.key(0), 1000))
  assert set(np.unique(np.asarray(draws[1]))) == {9, 10}
  assert 0.44 < np.asarray(draws[0]).mean() < 0.56


def _roz_bim_numpy(z0, label, w, b, eps, mean, std):
  """RoZ's BIM (attack_methods/BIM.py iterate_attack) for a linear model on
  normalised inputs, float32, one example."""
  def logits(z):
    return (z * std + mean).reshape(-1) @ w + b

  def grad(z):
    l = logits(z)
    p = np.exp(l - l.max())
    p /= p.sum()
    p[label] -= 1
    return (w @ p).reshape(z.shape) * std

  steps = int(min(eps * 255 + 4, 1.25 * eps * 255))
  alpha = np.float32(eps * 0.15)
  if logits(z0).argmax() != label:
    return z0, True, 0
  z = z0.copy()
  for i in range(steps):
    adv = z + alpha * np.sign(grad(z))
    a = np.maximum(z0 - np.float32(eps), np.float32(-1.8))
    bb = np.where(adv >= a, adv, a)
    c = np.where(bb > z0 + np.float32(eps), z0 + np.float32(eps), bb)
    z = np.minimum(c, np.float32(2.15)).astype(np.float32)
    if logits(z).argmax() != label:
      return z, True, i + 1
  return z, False, steps


def test_roz_bim_normalised_space_matches_numpy_transcription():
  rng = np.random.default_rng(0)
  n = 12
  x = rng.uniform(size=(n, 4, 4, 3)).astype(np.float32)
  x[0, 0, 0] = [0.0, 0.0, 1.0]      # pixels at the ends exercise the clamp
  p = {"w": jnp.asarray(rng.normal(size=(48, 4)).astype(np.float32) * 3),
       "b": jnp.zeros(4)}
  y = np.asarray(linear_apply(p, jnp.asarray(x))).argmax(1)
  y[1] = (y[1] + 1) % 4              # one misclassified example
  pre = Preprocess(size=4, resize=4, mean=MEAN, std=STD)
  attack = attacks.get("bim(eps=8/255, space='normalized')").for_model(pre)
  r = attack(linear_apply, p, jnp.asarray(x), y, keys(n))
  mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
  w, b = np.asarray(p["w"]), np.asarray(p["b"])
  steps_seen = []
  for i in range(n):
    z0 = ((x[i] - mean) / std).astype(np.float32)
    z, fooled, steps = _roz_bim_numpy(z0, y[i], w, b, 8 / 255, mean, std)
    np.testing.assert_allclose(np.asarray(r.adv_images[i]), z * std + mean, atol=1e-5)
    if i != 1:
      assert bool(r.success[i]) == fooled
    steps_seen.append(steps)
  assert not bool(r.success[1])
  assert 0 < np.mean(np.asarray(r.success)) < 1 and max(steps_seen) == 10
  # L-inf ball in normalised units: pixel change <= eps * std per channel.
  d = np.abs(np.asarray(r.adv_images) - x)
  assert np.all(d <= 8 / 255 * std + 1e-6)
  assert np.all(np.asarray(r.diagnostics["linf"]) <= 8 / 255 + 1e-5)
