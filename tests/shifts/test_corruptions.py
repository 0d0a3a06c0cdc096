"""Fidelity of jaxbench.shifts.corruptions against the reference corruption code.

Fixtures (tests/shifts/corruption_fixtures.npz) hold reference outputs made by
tests/shifts/make_corruption_fixtures.py, which runs the reference code with
np.random.seed(seed) before each call. For random corruptions the tests replay
the same NumPy draws (legacy RandomState streams are stable across NumPy
versions) and feed them to our deterministic `apply`, so every corruption is
compared pixel for pixel: mean absolute difference <= 1/255. The noises the
reference draws unseeded (impulse) or that are trivially `draw / c` (shot) are
compared by their statistics instead, as are our own samplers.
"""
import functools
import io
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import shifts
from jaxbench.registry import SpecError
from jaxbench.shifts import corruptions as C
from jaxbench.shifts.corruptions import image_ops

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = np.load(os.path.join(HERE, "corruption_fixtures.npz"))
PATCHES = ((0, 0), (100, 100))
PATCH = 24

DEVICE_FIXTURES = [n for n in C.ALL if n not in C.HOST_ONLY
                   and n not in ("shot_noise", "impulse_noise", "spatter")]


def _images(res):
  return FIX["img224"][None] if res == "imagenet" else FIX["img32"]


def _reference(res, name, severity):
  return FIX[f"out/{res}/{name}/{severity}"].astype(np.float64) / 64.0


def _seeds(res, name, severity):
  return [int(s) for s in FIX[f"seed/{res}/{name}/{severity}"]]


def _crop(res, out):
  """Our (N, H, W, 3) outputs in the fixture's layout."""
  if res == "cifar":
    return out
  return np.stack([o[r:r + PATCH, c:c + PATCH] for o in out for r, c in PATCHES])


def _replay(name, severity, res, shape, seed):
  """The random fields the reference drew after np.random.seed(seed)."""
  h, w = shape[:2]
  np.random.seed(seed)
  p = C.table(name, severity, res)
  if name in ("gaussian_noise", "speckle_noise"):
    return {"z": np.random.standard_normal(shape).astype(np.float32)}
  if name == "glass_blur":
    n = image_ops.glass_positions(h, w, p[1], p[2])
    return {"offsets": np.random.randint(-p[1], p[1], size=(n, 2)).astype(np.int8)}
  if name == "fog":
    mapsize = 1 << (max(h, w) - 1).bit_length()
    return {"u": [np.random.random_sample((1 << k, 1 << k)).astype(np.float32)
                  for k in range(int(np.log2(mapsize))) for _ in range(3)]}
  if name == "spatter":
    return {"z": np.random.standard_normal((h, w)).astype(np.float32)}
  if name == "elastic_transform":
    affine = np.random.uniform(-p[2], p[2], size=(3, 2)).astype(np.float32)
    return {"affine": affine,
            "dx": np.random.uniform(-1, 1, size=(h, w)).astype(np.float32),
            "dy": np.random.uniform(-1, 1, size=(h, w)).astype(np.float32)}
  return {}


@functools.lru_cache(maxsize=None)
def _apply_fn(name, static):
  kern = C.kernel(name)

  def f(x, fields, arrays):
    return jax.vmap(lambda xi, fi: kern.apply(xi, fi, arrays, static))(x, fields)

  return jax.jit(f)


def _device_outputs(name, severity, res):
  images = _images(res)
  arrays, static = C.device_params(name, severity, res, images.shape[1:3])
  seeds = _seeds(res, name, severity)
  fields = [_replay(name, severity, res, images.shape[1:], s) for s in seeds]
  fields = jax.tree.map(lambda *a: np.stack(a), *fields)
  x = images.astype(np.float32) / 255
  return np.asarray(_apply_fn(name, static)(x, fields, arrays)) * 255


@pytest.mark.parametrize("res", C.RESOLUTIONS)
@pytest.mark.parametrize("name", DEVICE_FIXTURES)
def test_device_corruption_matches_reference(name, res):
  for severity in range(1, 6):
    ours = _crop(res, _device_outputs(name, severity, res))
    ref = _reference(res, name, severity)
    mad = np.abs(ours - ref).mean()
    assert mad <= 1.0, f"{res} {name} severity {severity}: mean |diff| {mad:.3f}/255"


@pytest.mark.parametrize("res", C.RESOLUTIONS)
def test_spatter_matches_reference(res):
  images = _images(res)
  for severity in range(1, 6):
    p = C.table("spatter", severity, res)
    if C.is_device("spatter", severity, res):
      ours = _device_outputs("spatter", severity, res)
    else:
      outs = []
      for img, seed in zip(images, _seeds(res, "spatter", severity)):
        np.random.seed(seed)
        liquid = np.random.normal(size=img.shape[:2], loc=p[0], scale=p[1])
        outs.append(C.spatter_water_np(img, p, liquid))
      ours = np.stack(outs)
    mad = np.abs(_crop(res, ours) - _reference(res, "spatter", severity)).mean()
    assert mad <= 1.0, f"{res} spatter severity {severity}: {mad:.3f}/255"
  assert [C.is_device("spatter", s, res) for s in range(1, 6)] == [False] * 3 + [True] * 2


@pytest.mark.parametrize("res", C.RESOLUTIONS)
def test_host_corruptions_match_reference(res):
  images = _images(res)
  for name in ("motion_blur", "snow", "jpeg_compression"):
    for severity in range(1, 6):
      p = C.table(name, severity, res)
      outs = []
      for img, seed in zip(images, _seeds(res, name, severity)):
        np.random.seed(seed)
        if name == "motion_blur":
          out = C.motion_blur_np(img, p[0], p[1], np.random.uniform(-45, 45))
        elif name == "snow":
          layer = np.random.normal(size=img.shape[:2], loc=p[0], scale=p[1])
          out = C.snow_np(img, p, layer, np.random.uniform(-135, -45))
        else:
          out = C.jpeg_np(img, p)
        outs.append(np.asarray(out, np.float64))
      mad = np.abs(_crop(res, np.stack(outs)) - _reference(res, name, severity)).mean()
      assert mad <= 1.0, f"{res} {name} severity {severity}: {mad:.3f}/255"


@functools.lru_cache(maxsize=None)
def _run_fn(name, static):
  """sample + apply with the severity's arrays as arguments: one compile per shape."""
  kern = C.kernel(name)

  def f(keys, x, arrays):
    return jax.vmap(lambda k, xi: kern.apply(xi, kern.sample(k, xi, arrays, static),
                                             arrays, static))(keys, x)

  return jax.jit(f)


def _run(name, severity, res, keys, x):
  arrays, static = C.device_params(name, severity, res, x.shape[1:3])
  return np.asarray(_run_fn(name, static)(keys, x, arrays))


def _clipped_poisson_moments(c, p=0.5):
  """Mean and std of clip(Poisson(p c) / c, 0, 1) - p."""
  from scipy import stats
  k = np.arange(0, int(10 * c + 50))
  v = np.clip(k / c, 0, 1) - p
  w = stats.poisson.pmf(k, p * c)
  mean = (w * v).sum()
  return mean, np.sqrt((w * (v - mean) ** 2).sum())


NOISES = ("gaussian_noise", "speckle_noise", "shot_noise", "impulse_noise")


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


def test_noise_statistics():
  keys = jax.random.split(jax.random.key(0), 8)
  level = 128 / 255   # inputs are on the uint8 grid
  grey = np.full((8, 32, 32, 3), level, np.float32)
  for res in C.RESOLUTIONS:
    for severity in (1, 3, 5):
      arrays = {n: C.device_params(n, severity, res, (32, 32))[0] for n in NOISES}
      out = {k: np.asarray(v) for k, v in _noises_fn()(keys, grey, arrays).items()}
      # Gaussian and speckle: std c and c * level around level (before clipping,
      # which is negligible at severities <= 3 and measured below for shot).
      if severity <= 3 or res == "cifar":
        c = C.table("gaussian_noise", severity, res)
        assert abs(out["gaussian_noise"].std() - c) < 0.03 * c, (res, severity)
        c = C.table("speckle_noise", severity, res)
        assert abs(out["speckle_noise"].std() - level * c) < 0.03 * c, (res, severity)
      # Shot: the moments of clip(Poisson(0.5 c) / c); the reference's measured
      # std is in the fixture.
      c = C.table("shot_noise", severity, res)
      shot = out["shot_noise"] - level
      exp_mean, exp_std = _clipped_poisson_moments(c, level)
      ref_std = FIX[f"stats/{res}/shot_noise/{severity}"][0]
      assert abs(shot.std() - exp_std) < 0.04 * exp_std, (res, severity, shot.std(), exp_std)
      # The reference was measured at 0.5 exactly (a float grey).
      ref_exp = _clipped_poisson_moments(c, 0.5)[1]
      assert abs(ref_std - ref_exp) < 0.06 * ref_exp, (res, severity, ref_std, ref_exp)
      assert abs(shot.mean() - exp_mean) < 0.05 * exp_std
      # Impulse: a fraction `amount` of values flipped, half to 0, half to 1.
      amount = C.table("impulse_noise", severity, res)
      imp = out["impulse_noise"]
      flipped = (imp == 0) | (imp == 1)
      salt = (imp == 1).sum() / flipped.sum()
      ref_frac, ref_salt = FIX[f"stats/{res}/impulse_noise/{severity}"]
      tol = 4 * np.sqrt(amount / flipped.size) + 0.05 * amount
      assert abs(flipped.mean() - amount) < tol, (res, severity, flipped.mean(), amount)
      assert abs(ref_frac - amount) < 2 * tol, (res, severity, ref_frac, amount)
      assert abs(salt - 0.5) < 0.1 and abs(ref_salt - 0.5) < 0.1


def test_samplers_draw_like_the_reference():
  key = jax.random.key(3)
  x = jnp.zeros((224, 224, 3))
  sev = 5
  arrays, static = C.device_params("glass_blur", sev, "imagenet", (224, 224))
  off = np.asarray(C.kernel("glass_blur").sample(key, x, arrays, static)["offsets"])
  d = C.table("glass_blur", sev)[1]
  assert off.shape == (image_ops.glass_positions(224, 224, d, 2), 2)
  assert off.min() == -d and off.max() == d - 1   # np.random.randint(-d, d)
  arrays, static = C.device_params("elastic_transform", 2, "imagenet", (224, 224))
  f = C.kernel("elastic_transform").sample(key, x, arrays, static)
  jitter = C.table("elastic_transform", 2)[2]
  assert np.abs(np.asarray(f["affine"])).max() <= jitter
  assert 0.5 < np.asarray(f["dx"]).std() * np.sqrt(3) < 1.5   # U(-1, 1)


def test_device_fn_depends_on_example_keys_not_batch():
  images = jnp.asarray(np.concatenate([FIX["img32"], FIX["img32"][::-1]]), jnp.float32) / 255
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(4))
  shift = shifts.get("cifar10_c(corruption='glass_blur', severity=4)")
  fn = jax.jit(shift.device_fn)
  whole = np.asarray(fn(keys, images))
  parts = np.concatenate([np.asarray(fn(keys[i:i + 1], images[i:i + 1])) for i in range(4)])
  np.testing.assert_array_equal(whole, parts)
  # Same image, different example keys: different corruptions.
  assert not np.array_equal(whole[0], whole[3])
  # Quantized to the uint8 grid, as the reference's np.uint8.
  np.testing.assert_allclose(whole * 255, np.round(whole * 255), atol=1e-3)


def test_registry_specs_and_kinds():
  fog = shifts.get("imagenet_c(corruption='fog', severity=3)")
  assert fog.kind == "device" and hasattr(fog, "device_fn") and not hasattr(fog, "host_fn")
  assert fog.spec == "imagenet_c(corruption='fog', severity=3)"
  assert fog.provenance["source"] == "generated"
  assert fog.jpeg_quality == 85 and fog.provenance["jpeg_quality"] == 85
  raw = shifts.get("imagenet_c(corruption='fog', severity=3, quantize=False, jpeg_quality=None)")
  assert raw.spec == "imagenet_c(corruption='fog', jpeg_quality=None, quantize=False, severity=3)"
  assert raw.provenance["jpeg_quality"] is None
  jpeg = shifts.get("corrupt(name='jpeg_compression', severity=2, res='cifar')")
  assert jpeg.kind == "host" and hasattr(jpeg, "host_fn") and not hasattr(jpeg, "device_fn")
  assert jpeg.params == 65
  assert jpeg.spec == "corrupt(name='jpeg_compression', res='cifar', severity=2)"
  out = jpeg.host_fn(FIX["img32"][0], np.random.default_rng(0))
  assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
  for name in C.ALL:
    for severity in range(1, 6):
      shift = C.make(name, severity, "cifar")
      assert shift.kind == ("device" if C.is_device(name, severity, "cifar") else "host")
  assert {"imagenet_c", "cifar10_c", "corrupt"} <= set(shifts.names())


def test_bad_specs_raise_clear_errors():
  with pytest.raises(ValueError, match="unknown corruption 'fgo'"):
    shifts.get("imagenet_c(corruption='fgo', severity=3)")
  with pytest.raises(ValueError, match="severity must be an int in 1..5, got 6"):
    shifts.get("imagenet_c(corruption='fog', severity=6)")
  with pytest.raises(ValueError, match="res='tiny'"):
    shifts.get("corrupt(name='fog', severity=1, res='tiny')")
  with pytest.raises(SpecError, match="unknown shift 'imagenet_cc'"):
    shifts.get("imagenet_cc(corruption='fog', severity=1)")
  with pytest.raises(ValueError, match="jpeg_quality=85 needs quantize=True"):
    shifts.get("imagenet_c(corruption='fog', severity=3, quantize=False)")
  with pytest.raises(ValueError, match="jpeg_quality=101: expected an int in 1..100"):
    shifts.get("imagenet_c(corruption='fog', severity=3, jpeg_quality=101)")
  with pytest.raises(ValueError, match=r"expected a uint8 \(H, W, 3\) image"):
    C.make("motion_blur", 1).host_fn(np.zeros((8, 8), np.float32), np.random.default_rng(0))


def _write_textures(directory, sizes):
  import cv2
  rng = np.random.default_rng(0)
  textures = []
  for name, (h, w) in zip(C.FROST_FILES, sizes):
    tex = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    path = os.path.join(directory, name)
    cv2.imwrite(path, tex[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    textures.append(cv2.imread(path)[..., ::-1])   # what a reader gets back (RGB)
  return textures


def test_frost_blends_a_texture_crop(tmp_path):
  sizes = [(300, 420), (260, 300), (280, 280), (250, 330), (320, 240), (300, 300)]
  textures = _write_textures(str(tmp_path), sizes)
  img = FIX["img224"]
  for severity in (1, 5):
    # The corruption itself, without the official files' JPEG-85 save.
    shift = shifts.get(f"imagenet_c(corruption='frost', severity={severity}, "
                       f"frost_dir={str(tmp_path)!r}, jpeg_quality=None)")
    assert shift.kind == "host"
    c0, c1 = C.table("frost", severity)
    out = shift.host_fn(img, np.random.default_rng(severity)).astype(np.float64)
    # Solve for the texture crop the output used; it must be one crop of one
    # of the first five pictures (create_c draws randint(5)).
    crop = (out - c0 * img) / c1
    found = False
    for tex in textures[:5]:
      for top in range(tex.shape[0] - 224):
        row = tex[top, :, :].astype(np.float64)
        for left in np.flatnonzero(np.abs(row[:, 0] - crop[0, 0, 0]) < 1.5 / c1):
          cand = tex[top:top + 224, left:left + 224]
          if cand.shape[:2] != (224, 224):
            continue
          expected = np.uint8(np.clip(c0 * img + c1 * cand.astype(np.float64), 0, 255))
          if np.array_equal(expected, out.astype(np.uint8)):
            found = True
            break
        if found:
          break
      if found:
        break
    assert found, f"frost severity {severity}: output is not c0*x + c1*crop"
  # CIFAR textures are scaled by 0.2 first (make_cifar_c.py).
  tex = C.frost_texture(str(tmp_path), 0, "cifar", (32, 32))
  assert tex.shape[:2] == (60, 84)


def test_frost_without_textures_names_where_to_get_them(tmp_path, monkeypatch):
  monkeypatch.setenv(C.FROST_ENV, str(tmp_path))
  monkeypatch.setattr(os.path, "expanduser", lambda p: str(tmp_path / "home") if p == "~" else p)
  import importlib.util
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError) as e:
    shifts.get(f"imagenet_c(corruption='frost', severity=1, frost_dir={str(tmp_path)!r})")
  msg = str(e.value)
  assert "frost1.png" in msg and "frost5.jpg" in msg and "hendrycks/robustness" in msg
  assert "imagecorruptions" in msg and C.FROST_ENV in msg and str(tmp_path) in msg


def test_pixelate_is_bit_exact_with_pil():
  from PIL import Image
  rng = np.random.default_rng(0)
  key = jax.random.split(jax.random.key(0), 1)
  for res, n in (("imagenet", 224), ("cifar", 32)):
    img = (rng.random((n, n, 3)) * 255).astype(np.uint8)
    x = img[None].astype(np.float32) / 255
    for severity in range(1, 6):
      c = C.table("pixelate", severity, res)
      pil = Image.fromarray(img).resize((int(n * c), int(n * c)), Image.BOX)
      pil = np.asarray(pil.resize((n, n), Image.BOX))
      ours = _run("pixelate", severity, res, key, x)
      np.testing.assert_array_equal(np.round(ours[0] * 255).astype(np.uint8), pil)


def test_zoom_plans_keep_the_top_rows():
  # create_c trims (size - n) // 2 rows after zooming; imagecorruptions keeps
  # the first n. Both agree for every table entry (size - n < 2).
  for res, n in (("imagenet", 224), ("cifar", 32)):
    for zooms in C.PARAMS[res]["zoom_blur"]:
      assert (image_ops.zoom_plan(n, zooms)[:, 2] == 0).all()


def _pil_jpeg(img_uint8, quality):
  """Independent reference: PIL encode/decode, as create_c's save (quality=85)."""
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(img_uint8).save(buf, "JPEG", quality=quality)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert("RGB"))


def test_imagenet_c_default_adds_the_official_jpeg85_save():
  img = FIX["img224"]
  x = np.stack([img, img[::-1]]).astype(np.float32) / 255
  keys = jax.random.split(jax.random.key(3), 2)
  plain = shifts.get("imagenet_c(corruption='gaussian_noise', severity=3, jpeg_quality=None)")
  saved = shifts.get("imagenet_c(corruption='gaussian_noise', severity=3)")
  assert saved.jpeg_quality == 85 and plain.jpeg_quality is None
  a = np.asarray(plain.device_fn(keys, x))
  b = np.asarray(jax.jit(saved.device_fn)(keys, x))    # as in the runner's compiled step
  a8 = np.round(a * 255).astype(np.uint8)
  np.testing.assert_allclose(a8 / 255, a, atol=1e-6)    # uint8 grid before the save
  want = np.stack([_pil_jpeg(im, 85) for im in a8])
  np.testing.assert_array_equal(np.round(b * 255).astype(np.uint8), want)
  assert np.abs(b - a).mean() * 255 > 5     # the save changes the noise a lot
  # Host corruptions too (create_c's jpeg_compression output is saved again).
  host = shifts.get("imagenet_c(corruption='jpeg_compression', severity=1)")
  out = host.host_fn(img, np.random.default_rng(0))
  np.testing.assert_array_equal(out, _pil_jpeg(_pil_jpeg(img, 25), 85))
  # CIFAR-10-C is stored as uint8 arrays: no JPEG by default.
  assert shifts.get("cifar10_c(corruption='gaussian_noise', severity=3)").jpeg_quality is None


@functools.lru_cache(maxsize=None)
def _package_reference(res):
  """imagecorruptions' module (CIFAR tables for 'cifar'), loaded with the fixture
  maker's shims; its pkg_resources stand-in is removed again afterwards."""
  import make_corruption_fixtures as M
  had = "pkg_resources" in sys.modules
  try:
    return M.load_reference(res)
  finally:
    if not had:
      sys.modules.pop("pkg_resources", None)


def test_snow_crops_the_layer_before_the_blur_like_create_c():
  # Reference: the package's snow with create_c's clipped_zoom (trim to the
  # image size, then blur), same NumPy draws. Whole images, borders included:
  # blurring the larger layer first put up to 170/255 of extra snow there.
  import make_corruption_fixtures as M
  from PIL import Image
  for res, images in (("imagenet", FIX["img224"][None]), ("cifar", FIX["img32"])):
    ref = _package_reference(res)
    for severity in range(1, 6):
      p = C.table("snow", severity, res)
      for i, img in enumerate(images):
        np.random.seed(100 * severity + i)
        want = M.snow_create_c(ref, Image.fromarray(img), severity)
        np.random.seed(100 * severity + i)
        layer = np.random.normal(size=img.shape[:2], loc=p[0], scale=p[1])
        got = C.snow_np(img, p, layer, np.random.uniform(-135, -45))
        np.testing.assert_allclose(got, want, atol=1e-3,
                                   err_msg=f"{res} snow severity {severity}")
