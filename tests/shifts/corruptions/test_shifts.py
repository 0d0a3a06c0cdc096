"""jaxbench.shifts.corruptions.shifts: the shift objects, their specs and the registry."""
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import corruption_replay as R
from jaxbench import shifts
from jaxbench.registry import SpecError
from jaxbench.shifts import corruptions as C


@pytest.fixture(scope="module")
def glass_outputs():
  """cifar10_c glass blur 4 on two images and their mirror images, per-example keys:
  the whole batch at once, and one example at a time."""
  images = jnp.asarray(np.concatenate([R.FIX["img32"], R.FIX["img32"][::-1]]),
                       jnp.float32) / 255
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(4))
  shift = shifts.get("cifar10_c(corruption='glass_blur', severity=4)")
  fn = jax.jit(shift.device_fn)
  whole = np.asarray(fn(keys, images))
  parts = np.concatenate([np.asarray(fn(keys[i:i + 1], images[i:i + 1])) for i in range(4)])
  return whole, parts


def test_device_fn_depends_on_example_keys_not_batch(glass_outputs):
  whole, parts = glass_outputs
  np.testing.assert_array_equal(whole, parts)


def test_device_fn_differs_between_example_keys(glass_outputs):
  whole, _ = glass_outputs
  # Same image, different example keys: different corruptions.
  assert not np.array_equal(whole[0], whole[3])


def test_device_fn_quantizes_to_the_uint8_grid(glass_outputs):
  whole, _ = glass_outputs
  # Quantized to the uint8 grid, as the reference's np.uint8.
  np.testing.assert_allclose(whole * 255, np.round(whole * 255), atol=1e-3)


def test_imagenet_c_spec_provenance_and_jpeg_default():
  fog = shifts.get("imagenet_c(corruption='fog', severity=3)")
  assert fog.spec == "imagenet_c(corruption='fog', severity=3)"
  assert fog.provenance["source"] == "generated"
  assert fog.jpeg_quality == 85 and fog.provenance["jpeg_quality"] == 85


def test_spec_names_options_that_differ_from_the_family_default():
  raw = shifts.get("imagenet_c(corruption='fog', severity=3, quantize=False, jpeg_quality=None)")
  assert raw.spec == "imagenet_c(corruption='fog', jpeg_quality=None, quantize=False, severity=3)"
  assert raw.provenance["jpeg_quality"] is None


def test_corrupt_spec_params_and_host_output():
  jpeg = shifts.get("corrupt(name='jpeg_compression', severity=2, res='cifar')")
  assert jpeg.params == 65
  assert jpeg.spec == "corrupt(name='jpeg_compression', res='cifar', severity=2)"
  out = jpeg.host_fn(R.FIX["img32"][0], np.random.default_rng(0))
  assert out.dtype == np.uint8 and out.shape == (32, 32, 3)


@pytest.mark.parametrize("spec, kind", (
    ("imagenet_c(corruption='fog', severity=3)", "device"),
    ("corrupt(name='jpeg_compression', severity=2, res='cifar')", "host")))
def test_a_shift_has_the_function_of_its_kind_only(spec, kind):
  shift = shifts.get(spec)
  other = "host" if kind == "device" else "device"
  assert shift.kind == kind and hasattr(shift, f"{kind}_fn")
  assert not hasattr(shift, f"{other}_fn")


def test_make_picks_the_side_each_corruption_runs_on():
  for name in C.ALL:
    for severity in range(1, 6):
      shift = C.make(name, severity, "cifar")
      assert shift.kind == ("device" if C.is_device(name, severity, "cifar") else "host")


def test_corruption_families_are_registered():
  assert {"imagenet_c", "cifar10_c", "corrupt"} <= set(shifts.names())


@pytest.mark.parametrize("spec, error, match", (
    ("imagenet_c(corruption='fgo', severity=3)", ValueError, "unknown corruption 'fgo'"),
    ("imagenet_c(corruption='fog', severity=6)", ValueError,
     "severity must be an int in 1..5, got 6"),
    ("corrupt(name='fog', severity=1, res='tiny')", ValueError, "res='tiny'"),
    ("imagenet_cc(corruption='fog', severity=1)", SpecError, "unknown shift 'imagenet_cc'"),
    ("imagenet_c(corruption='fog', severity=3, quantize=False)", ValueError,
     "jpeg_quality=85 needs quantize=True"),
    ("imagenet_c(corruption='fog', severity=3, jpeg_quality=101)", ValueError,
     "jpeg_quality=101: expected an int in 1..100")))
def test_bad_specs_raise_clear_errors(spec, error, match):
  with pytest.raises(error, match=match):
    shifts.get(spec)


def test_host_fn_refuses_a_non_uint8_image():
  with pytest.raises(ValueError, match=r"expected a uint8 \(H, W, 3\) image"):
    C.make("motion_blur", 1).host_fn(np.zeros((8, 8), np.float32), np.random.default_rng(0))


def _pil_jpeg(img_uint8, quality):
  """Independent reference: PIL encode/decode, as create_c's save (quality=85)."""
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(img_uint8).save(buf, "JPEG", quality=quality)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert("RGB"))


def test_imagenet_c_default_adds_the_official_jpeg85_save():
  img = R.FIX["img224"]
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


def test_imagenet_c_host_corruptions_get_the_jpeg85_save_too():
  # create_c's jpeg_compression output is saved again.
  img = R.FIX["img224"]
  host = shifts.get("imagenet_c(corruption='jpeg_compression', severity=1)")
  out = host.host_fn(img, np.random.default_rng(0))
  np.testing.assert_array_equal(out, _pil_jpeg(_pil_jpeg(img, 25), 85))


def test_cifar10_c_has_no_jpeg_save_by_default():
  # CIFAR-10-C is stored as uint8 arrays: no JPEG by default.
  assert shifts.get("cifar10_c(corruption='gaussian_noise', severity=3)").jpeg_quality is None
