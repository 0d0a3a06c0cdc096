"""jaxbench.shifts.corruptions.device: every device kernel against the reference corruption code.

Outputs are compared with the reference's (see corruption_replay.py): pixel for pixel
from the replayed draws, by statistics for the noises the reference draws unseeded.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import corruption_replay as R
from jaxbench.shifts import corruptions as C
from jaxbench.shifts.corruptions import image_ops

DEVICE_FIXTURES = [n for n in C.ALL if n not in C.HOST_ONLY
                   and n not in ("shot_noise", "impulse_noise", "spatter")]


@pytest.mark.parametrize("res", C.RESOLUTIONS)
@pytest.mark.parametrize("name", DEVICE_FIXTURES)
def test_device_corruption_matches_reference(name, res):
  for severity in range(1, 6):
    ours = R.crop(res, R.device_outputs(name, severity, res))
    ref = R.reference(res, name, severity)
    mad = np.abs(ours - ref).mean()
    assert mad <= 1.0, f"{res} {name} severity {severity}: mean |diff| {mad:.3f}/255"


@pytest.mark.parametrize("res", C.RESOLUTIONS)
def test_mud_spatter_matches_reference(res):
  for severity in range(1, 6):
    if not C.is_device("spatter", severity, res):
      continue   # the water severities: test_host.py
    ours = R.device_outputs("spatter", severity, res)
    mad = np.abs(R.crop(res, ours) - R.reference(res, "spatter", severity)).mean()
    assert mad <= 1.0, f"{res} spatter severity {severity}: {mad:.3f}/255"


def _clipped_poisson_moments(c, p=0.5):
  """Mean and std of clip(Poisson(p c) / c, 0, 1) - p."""
  from scipy import stats
  k = np.arange(0, int(10 * c + 50))
  v = np.clip(k / c, 0, 1) - p
  w = stats.poisson.pmf(k, p * c)
  mean = (w * v).sum()
  return mean, np.sqrt((w * (v - mean) ** 2).sum())


NOISES = ("gaussian_noise", "speckle_noise", "shot_noise", "impulse_noise")
LEVEL = 128 / 255   # inputs are on the uint8 grid
NOISE_CASES = [(res, s) for res in C.RESOLUTIONS for s in (1, 3, 5)]


@functools.lru_cache(maxsize=None)
def _noises_fn():
  """All four noises in one program: one compilation for every severity and set."""
  def f(keys, x, arrays):
    out = {}
    for name in NOISES:
      kern = C.kernel(name)
      out[name] = jax.vmap(lambda k, xi, kern=kern, a=arrays[name]: kern.apply(
          xi, kern.sample(k, xi, a, ()), a, ()))(keys, x)
    return out
  return jax.jit(f)


@functools.lru_cache(maxsize=None)
def _noise_outputs(res, severity):
  """The four noises on 8 flat grey (32, 32, 3) images."""
  keys = jax.random.split(jax.random.key(0), 8)
  grey = np.full((8, 32, 32, 3), LEVEL, np.float32)
  arrays = {n: C.device_params(n, severity, res, (32, 32))[0] for n in NOISES}
  return {k: np.asarray(v) for k, v in _noises_fn()(keys, grey, arrays).items()}


# Gaussian and speckle: std c and c * level around level (before clipping, which
# is negligible at severities <= 3 and measured below for shot).
@pytest.mark.parametrize("res, severity",
                         [(r, s) for r, s in NOISE_CASES if s <= 3 or r == "cifar"])
def test_gaussian_noise_std(res, severity):
  out = _noise_outputs(res, severity)
  c = C.table("gaussian_noise", severity, res)
  assert abs(out["gaussian_noise"].std() - c) < 0.03 * c, (res, severity)


@pytest.mark.parametrize("res, severity",
                         [(r, s) for r, s in NOISE_CASES if s <= 3 or r == "cifar"])
def test_speckle_noise_std(res, severity):
  out = _noise_outputs(res, severity)
  c = C.table("speckle_noise", severity, res)
  assert abs(out["speckle_noise"].std() - LEVEL * c) < 0.03 * c, (res, severity)


@pytest.mark.parametrize("res, severity", NOISE_CASES)
def test_shot_noise_has_clipped_poisson_moments(res, severity):
  # The moments of clip(Poisson(0.5 c) / c); the reference's measured std is in
  # the fixture.
  out = _noise_outputs(res, severity)
  c = C.table("shot_noise", severity, res)
  shot = out["shot_noise"] - LEVEL
  exp_mean, exp_std = _clipped_poisson_moments(c, LEVEL)
  ref_std = R.FIX[f"stats/{res}/shot_noise/{severity}"][0]
  assert abs(shot.std() - exp_std) < 0.04 * exp_std, (res, severity, shot.std(), exp_std)
  # The reference was measured at 0.5 exactly (a float grey).
  ref_exp = _clipped_poisson_moments(c, 0.5)[1]
  assert abs(ref_std - ref_exp) < 0.06 * ref_exp, (res, severity, ref_std, ref_exp)
  assert abs(shot.mean() - exp_mean) < 0.05 * exp_std


@pytest.mark.parametrize("res, severity", NOISE_CASES)
def test_impulse_noise_flips_amount_half_to_salt(res, severity):
  # A fraction `amount` of values flipped, half to 0, half to 1.
  out = _noise_outputs(res, severity)
  amount = C.table("impulse_noise", severity, res)
  imp = out["impulse_noise"]
  flipped = (imp == 0) | (imp == 1)
  salt = (imp == 1).sum() / flipped.sum()
  ref_frac, ref_salt = R.FIX[f"stats/{res}/impulse_noise/{severity}"]
  tol = 4 * np.sqrt(amount / flipped.size) + 0.05 * amount
  assert abs(flipped.mean() - amount) < tol, (res, severity, flipped.mean(), amount)
  assert abs(ref_frac - amount) < 2 * tol, (res, severity, ref_frac, amount)
  assert abs(salt - 0.5) < 0.1 and abs(ref_salt - 0.5) < 0.1


def test_glass_blur_offsets_draw_like_the_reference():
  key = jax.random.key(3)
  x = jnp.zeros((224, 224, 3))
  sev = 5
  arrays, static = C.device_params("glass_blur", sev, "imagenet", (224, 224))
  off = np.asarray(C.kernel("glass_blur").sample(key, x, arrays, static)["offsets"])
  d = C.table("glass_blur", sev)[1]
  assert off.shape == (image_ops.glass_positions(224, 224, d, 2), 2)
  assert off.min() == -d and off.max() == d - 1   # np.random.randint(-d, d)


def test_elastic_fields_draw_like_the_reference():
  key = jax.random.key(3)
  x = jnp.zeros((224, 224, 3))
  arrays, static = C.device_params("elastic_transform", 2, "imagenet", (224, 224))
  f = C.kernel("elastic_transform").sample(key, x, arrays, static)
  jitter = C.table("elastic_transform", 2)[2]
  assert np.abs(np.asarray(f["affine"])).max() <= jitter
  assert 0.5 < np.asarray(f["dx"]).std() * np.sqrt(3) < 1.5   # U(-1, 1)


@pytest.mark.parametrize("res, n", (("imagenet", 224), ("cifar", 32)))
def test_pixelate_is_bit_exact_with_pil(res, n):
  from PIL import Image
  # One generator for both sets: the cifar image is its second draw.
  rng = np.random.default_rng(0)
  if res == "cifar":
    rng.random((224, 224, 3))
  key = jax.random.split(jax.random.key(0), 1)
  img = (rng.random((n, n, 3)) * 255).astype(np.uint8)
  x = img[None].astype(np.float32) / 255
  for severity in range(1, 6):
    c = C.table("pixelate", severity, res)
    pil = Image.fromarray(img).resize((int(n * c), int(n * c)), Image.BOX)
    pil = np.asarray(pil.resize((n, n), Image.BOX))
    ours = R.run("pixelate", severity, res, key, x)
    np.testing.assert_array_equal(np.round(ours[0] * 255).astype(np.uint8), pil)
