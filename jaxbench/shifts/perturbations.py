"""ImageNet-P perturbation sequences generated on the fly (hendrycks/robustness create_p).

``make_imagenet_p.py`` resizes a validation image to short side 256, then writes
a sequence of frames cropped to the central 224x224:

* noise (gaussian_noise, shot_noise, speckle_noise; difficulty 1..3 are
  separate sequences with growing noise): frame 0 is the clean crop, frames
  1..30 independent noisy copies of it;
* the others (one sequence each; ``difficulty`` only sets the step the metric
  compares frames with): 31 frames of a slowly varying perturbation, 41 for
  translate. Geometric ones (translate, rotate, scale, shear, tilt, zoom_blur)
  transform the 256 image before the crop.

The reference encoded frames as H.264 MP4; generated frames are uncompressed
uint8, so they are a variant of ImageNet-P, never the official videos. Motion
blur and snow used ImageMagick there; here they use the NumPy motion blur of
the ImageNet-C host kernels (``jaxbench.shifts.corruptions.host``), which are
also the one home of the pieces create_p shares with create_c (clipped zoom,
the whitening under snow, the water spatter). Geometric transforms follow torchvision's
``F.affine`` conventions on PIL images (centre = image centre, clockwise
angles, x-shear), PIL resampling with black fill.

Host-side: ``Perturbation(name, difficulty).sequence(image_uint8, rng)`` returns
(T, 224, 224, 3) uint8, all randomness from ``rng`` (seed it from (seed, image id)).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
from PIL import Image

from jaxbench.metrics import imagenet_p as _metrics
from jaxbench.registry import Registry, format_spec
from jaxbench.shifts.corruptions import host as _host

# The 14 perturbations and 3 difficulties: one list, kept with the metric (the
# official-video loader reads it there too).
NAMES = _metrics.PERTURBATIONS
DIFFICULTIES = _metrics.DIFFICULTIES
CROP = 224
RESIZE = 256

# Noise strength per difficulty (the three blocks of make_imagenet_p.py).
NOISE_LEVELS = {
    "gaussian_noise": (0.03, 0.05, 0.08),   # std
    "shot_noise": (300, 120, 60),          # Poisson rate
    "speckle_noise": (0.05, 0.10, 0.15),    # multiplicative std
}
NOISE = tuple(NOISE_LEVELS)

PERTURBATIONS = Registry("perturbation")


def num_frames(name: str) -> int:
  return 41 if name == "translate" else 31


def resize_short(image: Image.Image, size: int = RESIZE) -> Image.Image:
  """torchvision Resize(size) on a PIL image: short side to size, bilinear."""
  w, h = image.size
  if min(w, h) == size:
    return image
  if w <= h:
    new = (size, int(size * h / w))
  else:
    new = (int(size * w / h), size)
  return image.resize(new, Image.BILINEAR)


def center_crop(image: Image.Image, size: int = CROP) -> Image.Image:
  """torchvision CenterCrop(size) on a PIL image."""
  w, h = image.size
  top = int(round((h - size) / 2.0))
  left = int(round((w - size) / 2.0))
  return image.crop((left, top, left + size, top + size))


def _affine(image: Image.Image, angle: float = 0.0, translate=(0, 0), scale: float = 1.0,
            shear: float = 0.0, resample=Image.NEAREST) -> Image.Image:
  """torchvision-style affine of a PIL image about its centre (black fill).

  The forward map is x -> C + T + R(angle) Sh(shear) S(scale) (x - C) with a
  clockwise rotation, an x-shear and uniform scale; PIL needs the inverse.
  """
  w, h = image.size
  cx, cy = w * 0.5, h * 0.5
  a, s = math.radians(angle), math.radians(shear)
  # Rotation-scale-shear matrix (image coordinates, y down: clockwise visually).
  rss = np.array([[math.cos(a), math.cos(a) * math.tan(s) - math.sin(a)],
                  [math.sin(a), math.sin(a) * math.tan(s) + math.cos(a)]]) * scale
  inv = np.linalg.inv(rss)
  t = np.array([cx + translate[0], cy + translate[1]])
  offset = np.array([cx, cy]) - inv @ t
  data = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
  return image.transform((w, h), Image.AFFINE, data, resample=resample, fillcolor=(0, 0, 0))


def tilt_matrix(i: int, w: int, h: int) -> np.ndarray:
  """create_p's tilt homography for frame i: pinhole camera turned by (i - 15) degrees."""
  phi = theta = np.deg2rad(i - 15)
  f = np.sqrt(w ** 2 + h ** 2)
  p1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
  rx = np.array([[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0],
                 [0, np.sin(theta), np.cos(theta), 0], [0, 0, 0, 1]])
  ry = np.array([[np.cos(phi), 0, -np.sin(phi), 0], [0, 1, 0, 0],
                 [np.sin(phi), 0, np.cos(phi), 0], [0, 0, 0, 1]])
  t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
  p2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
  return p2 @ t @ rx @ ry @ p1


def _trunc(x01: np.ndarray) -> np.ndarray:
  """np.uint8(255 * clip(x)): the reference's truncating conversion."""
  return np.uint8(np.clip(x01, 0, 1) * 255)


def _brightness(x: np.ndarray, c: float) -> np.ndarray:
  import skimage.color
  hsv = skimage.color.rgb2hsv(np.asarray(x) / 255.)
  hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
  return np.uint8(skimage.color.hsv2rgb(hsv) * 255)


def _drip(liquid: np.ndarray) -> np.ndarray:
  """np.convolve(column, [0.05, 0.1, 0.15, 0.7], mode='same') for every column."""
  kernel = np.array([0.05, 0.1, 0.15, 0.7])
  n = liquid.shape[0]
  full = np.zeros((n + 3,) + liquid.shape[1:])
  for k, v in enumerate(kernel):
    full[k:k + n] += v * liquid
  return full[1:1 + n]


@dataclasses.dataclass(frozen=True)
class Perturbation:
  """One ImageNet-P perturbation at one difficulty (1..3)."""
  name: str
  difficulty: int = 1

  def __post_init__(self):
    if self.name not in NAMES:
      raise ValueError(f"unknown ImageNet-P perturbation {self.name!r}; expected one of "
                       f"{', '.join(NAMES)}")
    if self.difficulty not in DIFFICULTIES:
      raise ValueError(f"ImageNet-P difficulty must be one of {DIFFICULTIES}, got "
                       f"{self.difficulty!r}")

  @property
  def spec(self) -> str:
    return format_spec("imagenet_p", (), {"perturbation": self.name,
                                          "difficulty": self.difficulty})

  @property
  def noise(self) -> bool:
    return self.name in NOISE

  @property
  def frames(self) -> int:
    return num_frames(self.name)

  @property
  def provenance(self) -> dict:
    return {"source": "generated", "reference": "hendrycks/robustness create_p "
            "(make_imagenet_p.py)", "perturbation": self.name,
            "difficulty": self.difficulty}

  def sequence(self, image, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The perturbation sequence of one image.

    Args:
      image: uint8 (H, W, 3) array or PIL image, any size (resized to short
        side 256 as create_p).
      rng: randomness for the noise, snow and spatter sequences.
    Returns:
      uint8 (T, 224, 224, 3), T = 31 (41 for translate).
    """
    if rng is None:
      rng = np.random.default_rng(0)
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    img = resize_short(img.convert("RGB"))   # also enlarges small images, as Resize(256)
    frames = getattr(self, f"_{self.name}")(img, rng)
    return np.stack([np.asarray(f, np.uint8) for f in frames])

  # --- noise: frame 0 clean, 30 independent noisy copies --------------------
  def _gaussian_noise(self, img, rng):
    x = np.asarray(center_crop(img), np.float64) / 255.
    s = NOISE_LEVELS["gaussian_noise"][self.difficulty - 1]
    return [np.asarray(center_crop(img))] + [_trunc(x + s * rng.standard_normal(x.shape))
                                            for _ in range(30)]

  def _shot_noise(self, img, rng):
    x = np.asarray(center_crop(img), np.float64) / 255.
    lam = NOISE_LEVELS["shot_noise"][self.difficulty - 1]
    return [np.asarray(center_crop(img))] + [_trunc(rng.poisson(x * lam) / lam)
                                            for _ in range(30)]

  def _speckle_noise(self, img, rng):
    x = np.asarray(center_crop(img), np.float64) / 255.
    s = NOISE_LEVELS["speckle_noise"][self.difficulty - 1]
    return [np.asarray(center_crop(img))] + [
        _trunc(x + x * rng.normal(size=x.shape, scale=s)) for _ in range(30)]

  # --- photometric and blur sequences on the crop --------------------------
  def _brightness(self, img, rng):
    x = np.asarray(center_crop(img))
    return [_brightness(x, (i - 15) * 2 / 100.) for i in range(31)]

  def _gaussian_blur(self, img, rng):
    from scipy import ndimage
    x = np.asarray(center_crop(img), np.float64) / 255.
    return [_trunc(ndimage.gaussian_filter(x, (0.25 + 0.035 * i, 0.25 + 0.035 * i, 0),
                                           mode="nearest", truncate=6.0))
            for i in range(31)]

  def _motion_blur(self, img, rng):
    x = np.asarray(center_crop(img))
    return [np.uint8(np.clip(_host.motion_blur_np(x, 10, 3, (i - 30) * 4), 0, 255))
            for i in range(31)]

  def _snow(self, img, rng):
    x = np.asarray(center_crop(img), np.float64) / 255.
    layer = rng.normal(size=(CROP, CROP), loc=0.05, scale=0.3)
    layer = _host.clipped_zoom(layer[..., None], 3)
    layer[layer < 0.5] = 0
    layer = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    base = _host.snow_whiten(x, 0.85)
    frames = []
    for i in range(31):
      moving = _host.motion_blur_np(layer, radius=14, sigma=4, angle=i * 4 - 150)
      moving = (np.round(np.clip(moving, 0, 255)) / 255.)[..., None]
      frames.append(_trunc(base + moving + np.rot90(moving, k=2)))
    return frames

  def _spatter(self, img, rng):
    from scipy import ndimage
    x = np.asarray(center_crop(img), np.float32) / 255.
    liquid = rng.normal(size=(CROP, CROP), loc=0.65, scale=0.27)
    liquid = ndimage.gaussian_filter(liquid, 3.7, mode="nearest", truncate=4.0)
    liquid[liquid < 0.69] = 0
    frames = []
    for _ in range(31):
      frames.append(_trunc(_host.water_splash(x, liquid, 0.6)))
      liquid = _drip(liquid)
    return frames

  # --- geometric sequences on the 256 image, then the centre crop -----------
  def _translate(self, img, rng):
    return [center_crop(_affine(img, translate=(i - 20, 0))) for i in range(41)]

  def _rotate(self, img, rng):
    return [center_crop(_affine(img, angle=i - 15, resample=Image.BILINEAR))
            for i in range(31)]

  def _scale(self, img, rng):
    return [center_crop(_affine(img, scale=(i * 2.5 + 40) / 100., resample=Image.BILINEAR))
            for i in range(31)]

  def _shear(self, img, rng):
    return [center_crop(_affine(img, shear=i - 15, resample=Image.BILINEAR))
            for i in range(31)]

  def _tilt(self, img, rng):
    import cv2
    x = np.asarray(img)
    h, w = x.shape[:2]
    return [center_crop(Image.fromarray(cv2.warpPerspective(x, tilt_matrix(i, w, h), (w, h))))
            for i in range(31)]

  def _zoom_blur(self, img, rng):
    first = center_crop(img)
    avg = np.asarray(first, np.float64) / 255.
    frames = [first]
    for i in range(1, 31):
      z = center_crop(_affine(img, scale=1 + 0.004 * i, resample=Image.BILINEAR))
      avg = avg + np.asarray(z, np.float64) / 255.
      frames.append(_trunc(avg / (i + 1)))
    return frames


@PERTURBATIONS.register("imagenet_p")
def imagenet_p(perturbation: str, difficulty: int = 1) -> Perturbation:
  return Perturbation(perturbation, difficulty)


def get(spec: str) -> Perturbation:
  """``imagenet_p(perturbation='rotate', difficulty=2)`` -> Perturbation."""
  return PERTURBATIONS.get(spec)
