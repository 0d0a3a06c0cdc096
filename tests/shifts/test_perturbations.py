"""ImageNet-P sequence generation against create_p's definitions."""
import functools

import numpy as np
import pytest
from PIL import Image

from jaxbench.shifts import perturbations as P


def _image(h=256, w=300, seed=0):
  """A smooth test picture (gradients and a disc), short side 256: no resize."""
  yy, xx = np.mgrid[0:h, 0:w]
  rng = np.random.default_rng(seed)
  img = np.stack([xx / w, yy / h, ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < 60 ** 2) * 0.8],
                 axis=-1) * 200 + 20 + rng.normal(size=(h, w, 3)) * 3
  return np.uint8(np.clip(img, 0, 255))


IMG = _image()
CROP = np.asarray(P.center_crop(Image.fromarray(IMG)))
GREY = np.full((256, 256, 3), 128, np.uint8)


@functools.lru_cache(maxsize=None)
def _grey_noise(name, difficulty, seed):
  return P.Perturbation(name, difficulty).sequence(GREY, np.random.default_rng(seed))


@functools.lru_cache(maxsize=None)
def _sequence(name):
  """The sequence of IMG (default generator)."""
  return P.Perturbation(name).sequence(IMG)


@pytest.mark.parametrize("d", P.DIFFICULTIES)
def test_noise_sequences_start_with_the_clean_crop(d):
  seq = _grey_noise("gaussian_noise", d, d)
  assert seq.shape == (31, 224, 224, 3)
  np.testing.assert_array_equal(seq[0], 128)


@pytest.mark.parametrize("d, s", list(enumerate(P.NOISE_LEVELS["gaussian_noise"], start=1)))
def test_gaussian_noise_sequence_has_the_reference_std(d, s):
  diff = _grey_noise("gaussian_noise", d, d)[1:].astype(np.float64) - 128
  # uint8(255 * (0.50196 + s z)) truncates: std sqrt((255 s)^2 + 1/12).
  assert abs(diff.std() - np.sqrt((255 * s) ** 2 + 1 / 12)) < 0.03 * 255 * s


@pytest.mark.parametrize("d, lam", list(enumerate(P.NOISE_LEVELS["shot_noise"], start=1)))
def test_shot_noise_sequence_has_the_poisson_std(d, lam):
  seq = _grey_noise("shot_noise", d, d)
  p = 128 / 255
  assert abs((seq[1:] / 255.).std() - np.sqrt(p / lam)) < 0.05 * np.sqrt(p / lam)


def test_speckle_noise_sequence_has_the_reference_std():
  seq = _grey_noise("speckle_noise", 3, 0)
  assert abs((seq[1:] / 255.).std() - 0.15 * 128 / 255) < 0.01


def test_noise_sequences_are_reproducible_from_the_generator():
  a = P.Perturbation("gaussian_noise", 1).sequence(IMG, np.random.default_rng(5))
  b = P.Perturbation("gaussian_noise", 1).sequence(IMG, np.random.default_rng(5))
  np.testing.assert_array_equal(a, b)


def test_translate_moves_the_content_by_whole_pixels():
  seq = _sequence("translate")
  assert seq.shape == (41, 224, 224, 3)
  np.testing.assert_array_equal(seq[20], CROP)          # translate (0, 0)
  # translate (+3, 0): content moves right by 3 pixels.
  np.testing.assert_array_equal(seq[23][:, 3:], CROP[:, :-3])
  np.testing.assert_array_equal(seq[17][:, :-3], CROP[:, 3:])


@pytest.mark.parametrize("name, identity", (("rotate", 15), ("shear", 15), ("scale", 24)))
def test_geometric_sequences_pass_through_the_identity(name, identity):
  seq = _sequence(name)
  assert seq.shape == (31, 224, 224, 3)
  assert np.abs(seq[identity].astype(int) - CROP).max() <= 1, name
  assert np.abs(seq[0].astype(int) - CROP).mean() > 2, name


def test_rotation_is_clockwise_as_torchvision():
  # rotate(+90 deg) of a square picture is np.rot90 clockwise (torchvision's sign).
  sq = _image(256, 256)
  rot = np.asarray(P._affine(Image.fromarray(sq), angle=90))
  np.testing.assert_array_equal(rot[1:, 1:], np.rot90(sq, k=-1)[1:, 1:])


def test_scale_down_leaves_black_borders():
  assert (_sequence("scale")[0][:40] == 0).all()   # scale 0.4 leaves black borders


def test_tilt_homography_by_hand():
  w, h = 300, 256
  f = np.sqrt(w ** 2 + h ** 2)
  # No rotation (frame 15): x' = (f x + w/2) / (1 + f), as the product of
  # create_p's P2 T P1 gives.
  m = P.tilt_matrix(15, w, h)
  np.testing.assert_allclose(m, [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1 + f]], atol=1e-9)


def test_untilted_frame_is_close_to_the_crop():
  seq = _sequence("tilt")
  assert seq.shape == (31, 224, 224, 3)
  assert np.abs(seq[15].astype(int) - CROP).mean() < 3


def test_brightness_sequence_is_skimage_hsv_value_shift():
  import skimage.color
  seq = _sequence("brightness")
  assert np.abs(seq[15].astype(int) - CROP).max() <= 1      # c = 0 (up to truncation)
  hsv = skimage.color.rgb2hsv(CROP / 255.)
  hsv[..., 2] = np.clip(hsv[..., 2] + 0.3, 0, 1)            # frame 30: c = 0.3
  np.testing.assert_array_equal(seq[30], np.uint8(skimage.color.hsv2rgb(hsv) * 255))


def test_gaussian_blur_sequence_is_skimage_gaussian():
  import skimage.filters
  seq = _sequence("gaussian_blur")
  ref = skimage.filters.gaussian(CROP / 255., sigma=0.25 + 0.035 * 20, channel_axis=-1,
                                 truncate=6.0)
  assert np.abs(seq[20].astype(int) - np.uint8(255 * ref)).max() <= 1


def test_zoom_blur_sequence_blurs_more_with_time():
  seq = _sequence("zoom_blur")
  np.testing.assert_array_equal(seq[0], CROP)
  assert np.abs(seq[1].astype(int) - CROP).mean() < np.abs(seq[30].astype(int) - CROP).mean()


@pytest.mark.parametrize("name", ("motion_blur", "snow", "spatter"))
def test_moving_sequences_change_slowly(name):
  seq = P.Perturbation(name).sequence(IMG, np.random.default_rng(0))
  assert seq.shape == (31, 224, 224, 3) and seq.dtype == np.uint8
  assert 0 < np.abs(seq[1:].astype(int) - seq[:-1]).mean() < 20, name


def test_spatter_frames_are_the_imagenet_c_water_splash(monkeypatch):
  # create_p's spatter is create_c's water spatter (intensity 0.6) over a dripping
  # liquid layer: both generators must run the one implementation in the host kernels.
  from jaxbench.shifts.corruptions import host
  real, splashes = host.water_splash, []

  def spy(x, liquid, intensity):
    splashes.append((intensity, real(x, liquid, intensity)))
    return splashes[-1][1]

  monkeypatch.setattr(host, "water_splash", spy)
  seq = P.Perturbation("spatter").sequence(IMG, np.random.default_rng(0))
  assert [c for c, _ in splashes] == [0.6] * 31
  np.testing.assert_array_equal(seq, [np.uint8(np.clip(s, 0, 1) * 255) for _, s in splashes])


def test_drip_is_numpy_convolve_same():
  liquid = np.random.default_rng(0).random((7, 3))
  expected = np.stack([np.convolve(liquid[:, j], [0.05, 0.1, 0.15, 0.7], mode="same")
                       for j in range(3)], axis=1)
  np.testing.assert_allclose(P._drip(liquid), expected, atol=1e-12)


@pytest.mark.parametrize("build, match", (
    (lambda: P.Perturbation("blur"), "unknown ImageNet-P perturbation 'blur'"),
    (lambda: P.get("imagenet_p(perturbation='rotate', difficulty=4)"),
     "difficulty must be one of")))
def test_bad_perturbations_raise_clear_errors(build, match):
  with pytest.raises(ValueError, match=match):
    build()


def test_spec_is_canonical():
  assert P.get("imagenet_p(perturbation='rotate', difficulty=2)").spec == (
      "imagenet_p(difficulty=2, perturbation='rotate')")


def test_small_pictures_are_enlarged_to_short_side_256_first():
  # As Resize(256) does.
  assert P.Perturbation("rotate").sequence(np.zeros((50, 80, 3), np.uint8)).shape == (
      31, 224, 224, 3)
