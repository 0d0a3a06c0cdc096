"""ImageNet-P sequence generation against create_p's definitions."""
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


def test_noise_sequences_start_clean_and_have_the_reference_noise():
  grey = np.full((256, 256, 3), 128, np.uint8)
  for d, s in enumerate(P.NOISE_LEVELS["gaussian_noise"], start=1):
    seq = P.Perturbation("gaussian_noise", d).sequence(grey, np.random.default_rng(d))
    assert seq.shape == (31, 224, 224, 3)
    np.testing.assert_array_equal(seq[0], 128)
    diff = seq[1:].astype(np.float64) - 128
    # uint8(255 * (0.50196 + s z)) truncates: std sqrt((255 s)^2 + 1/12).
    assert abs(diff.std() - np.sqrt((255 * s) ** 2 + 1 / 12)) < 0.03 * 255 * s
  for d, lam in enumerate(P.NOISE_LEVELS["shot_noise"], start=1):
    seq = P.Perturbation("shot_noise", d).sequence(grey, np.random.default_rng(d))
    p = 128 / 255
    assert abs((seq[1:] / 255.).std() - np.sqrt(p / lam)) < 0.05 * np.sqrt(p / lam)
  seq = P.Perturbation("speckle_noise", 3).sequence(grey, np.random.default_rng(0))
  assert abs((seq[1:] / 255.).std() - 0.15 * 128 / 255) < 0.01
  a = P.Perturbation("gaussian_noise", 1).sequence(IMG, np.random.default_rng(5))
  b = P.Perturbation("gaussian_noise", 1).sequence(IMG, np.random.default_rng(5))
  np.testing.assert_array_equal(a, b)


def test_geometric_sequences():
  seq = P.Perturbation("translate").sequence(IMG)
  assert seq.shape == (41, 224, 224, 3)
  np.testing.assert_array_equal(seq[20], CROP)          # translate (0, 0)
  # translate (+3, 0): content moves right by 3 pixels.
  np.testing.assert_array_equal(seq[23][:, 3:], CROP[:, :-3])
  np.testing.assert_array_equal(seq[17][:, :-3], CROP[:, 3:])
  for name, identity in (("rotate", 15), ("shear", 15), ("scale", 24)):
    seq = P.Perturbation(name).sequence(IMG)
    assert seq.shape == (31, 224, 224, 3)
    assert np.abs(seq[identity].astype(int) - CROP).max() <= 1, name
    assert np.abs(seq[0].astype(int) - CROP).mean() > 2, name
  # rotate(+90 deg) of a square picture is np.rot90 clockwise (torchvision's sign).
  sq = _image(256, 256)
  rot = np.asarray(P._affine(Image.fromarray(sq), angle=90))
  np.testing.assert_array_equal(rot[1:, 1:], np.rot90(sq, k=-1)[1:, 1:])
  scale = P.Perturbation("scale").sequence(IMG)
  assert (scale[0][:40] == 0).all()   # scale 0.4 leaves black borders


def test_tilt_homography_by_hand():
  w, h = 300, 256
  f = np.sqrt(w ** 2 + h ** 2)
  # No rotation (frame 15): x' = (f x + w/2) / (1 + f), as the product of
  # create_p's P2 T P1 gives.
  m = P.tilt_matrix(15, w, h)
  np.testing.assert_allclose(m, [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1 + f]], atol=1e-9)
  seq = P.Perturbation("tilt").sequence(IMG)
  assert seq.shape == (31, 224, 224, 3)
  assert np.abs(seq[15].astype(int) - CROP).mean() < 3


def test_photometric_and_blur_sequences():
  import skimage.color
  import skimage.filters
  seq = P.Perturbation("brightness").sequence(IMG)
  assert np.abs(seq[15].astype(int) - CROP).max() <= 1      # c = 0 (up to truncation)
  hsv = skimage.color.rgb2hsv(CROP / 255.)
  hsv[..., 2] = np.clip(hsv[..., 2] + 0.3, 0, 1)            # frame 30: c = 0.3
  np.testing.assert_array_equal(seq[30], np.uint8(skimage.color.hsv2rgb(hsv) * 255))
  seq = P.Perturbation("gaussian_blur").sequence(IMG)
  ref = skimage.filters.gaussian(CROP / 255., sigma=0.25 + 0.035 * 20, channel_axis=-1,
                                 truncate=6.0)
  assert np.abs(seq[20].astype(int) - np.uint8(255 * ref)).max() <= 1
  seq = P.Perturbation("zoom_blur").sequence(IMG)
  np.testing.assert_array_equal(seq[0], CROP)
  assert np.abs(seq[1].astype(int) - CROP).mean() < np.abs(seq[30].astype(int) - CROP).mean()
  for name in ("motion_blur", "snow", "spatter"):
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


def test_bad_perturbations():
  with pytest.raises(ValueError, match="unknown ImageNet-P perturbation 'blur'"):
    P.Perturbation("blur")
  with pytest.raises(ValueError, match="difficulty must be one of"):
    P.get("imagenet_p(perturbation='rotate', difficulty=4)")
  assert P.get("imagenet_p(perturbation='rotate', difficulty=2)").spec == (
      "imagenet_p(difficulty=2, perturbation='rotate')")
  # Small pictures are enlarged to short side 256 first, as Resize(256) does.
  assert P.Perturbation("rotate").sequence(np.zeros((50, 80, 3), np.uint8)).shape == (
      31, 224, 224, 3)
