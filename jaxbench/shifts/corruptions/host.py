"""Host-side corruption kernels: NumPy / OpenCV / PIL, one image at a time.

The corruptions built on sequential algorithms (JPEG coding, Canny edges and a
chamfer distance transform, ImageMagick-style motion blur) run here, in the
input pipeline, and are used as they are. Every function takes the random
draws the reference made as arguments (``np.random.Generator`` draws in
:class:`jaxbench.shifts.corruptions.shifts.HostCorruption`), so tests can
replay the reference's NumPy streams. Inputs are uint8 (H, W, 3); outputs are
float in [0, 255] unless stated otherwise (the caller truncates to uint8, as
create_c's ``np.uint8``).
"""
from __future__ import annotations

import io
import math

import numpy as np


def motion_blur_taps(radius: int, sigma: float, angle: float, h: int, w: int):
  """(weight, dy, dx) taps of the imagecorruptions motion blur (create_c used
  ImageMagick's MotionBlurImage): a one-sided Gaussian of width 2r+1 along the
  angle, taps beyond the image size dropped."""
  width = radius * 2 + 1
  k = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
  k = k / np.sum(k)
  point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
  hypot = math.hypot(point[0], point[1])
  taps = []
  for i in range(width):
    dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
    dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
    if abs(dy) >= h or abs(dx) >= w:
      break
    taps.append((k[i], dy, dx))
  return taps


def motion_blur_np(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
  """Sum of edge-replicated shifted copies: out[y, x] = sum_i k_i img[y - dy_i, x - dx_i]."""
  h, w = x.shape[:2]
  taps = motion_blur_taps(radius, sigma, angle, h, w)
  # Edge-replicated padding once; every tap is then a plain slice.
  p = max([1] + [max(abs(dy), abs(dx)) for _, dy, dx in taps])
  pad = ((p, p), (p, p)) + ((0, 0),) * (x.ndim - 2)
  xp = np.pad(np.asarray(x, np.float64), pad, mode="edge")
  out = np.zeros(x.shape, np.float64)
  for weight, dy, dx in taps:
    out += weight * xp[p - dy:p - dy + h, p - dx:p - dx + w]
  return out


def _clipped_zoom_np(img: np.ndarray, zoom: float) -> np.ndarray:
  """imagecorruptions' clipped_zoom: centre crop, scipy zoom(order=1), no trim."""
  from scipy.ndimage import zoom as scizoom
  ch0 = int(np.ceil(img.shape[0] / float(zoom)))
  top0 = (img.shape[0] - ch0) // 2
  ch1 = int(np.ceil(img.shape[1] / float(zoom)))
  top1 = (img.shape[1] - ch1) // 2
  return scizoom(img[top0:top0 + ch0, top1:top1 + ch1], (zoom, zoom, 1), order=1)


def snow_np(x: np.ndarray, p, layer: np.ndarray, angle: float) -> np.ndarray:
  """Snow from the reference's random draws.

  Args:
    x: uint8 (H, W, 3).
    p: the severity's snow tuple (see PARAMS).
    layer: the (H, W) N(loc, scale) draw.
    angle: the blur angle drawn from U(-135, -45).
  Returns:
    float64 (H, W, 3) in [0, 255].
  """
  import cv2
  h, w = x.shape[:2]
  x = np.asarray(x, np.float32) / 255.
  layer = _clipped_zoom_np(layer[..., None], p[2])
  # create_c's clipped_zoom trims the zoomed layer to the image size (centred)
  # *before* the motion blur; imagecorruptions blurs the larger layer and crops
  # after, which pulls snow from beyond the border into the edge pixels (and,
  # through the 180-degree copy, into the opposite edges).
  top, left = (layer.shape[0] - h) // 2, (layer.shape[1] - w) // 2
  layer = layer[top:top + h, left:left + w]
  layer[layer < p[3]] = 0
  layer = np.clip(layer.squeeze(), 0, 1)
  layer = motion_blur_np(layer, radius=p[4], sigma=p[5], angle=angle)
  layer = np.round(layer * 255).astype(np.uint8) / 255.
  layer = layer[..., None]
  grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(h, w, 1)
  x = p[6] * x + (1 - p[6]) * np.maximum(x, grey * 1.5 + 0.5)
  return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


def spatter_water_np(x: np.ndarray, p, liquid: np.ndarray) -> np.ndarray:
  """Spatter at the water severities from the reference's N(loc, scale) draw (H, W)."""
  import cv2
  from scipy import ndimage
  x = np.asarray(x, np.float32) / 255.
  liquid = ndimage.gaussian_filter(liquid, p[2], mode="nearest", truncate=4.0)
  liquid[liquid < p[3]] = 0
  liquid = (liquid * 255).astype(np.uint8)
  dist = 255 - cv2.Canny(liquid, 50, 150)
  dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
  _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
  dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
  dist = cv2.equalizeHist(dist)
  ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
  dist = cv2.filter2D(dist, cv2.CV_8U, ker)
  dist = cv2.blur(dist, (3, 3)).astype(np.float32)
  m = liquid * dist
  peak = np.max(m)
  m = (m / peak if peak > 0 else m * 0) * p[4]
  # The reference's BGRA round trip only adds and drops an alpha channel.
  water = np.array([175, 238, 238], np.float32) / 255.
  return np.clip(x + m[..., None] * water, 0, 1) * 255


def jpeg_np(x: np.ndarray, quality: int) -> np.ndarray:
  """PIL JPEG encode/decode of a uint8 (H, W, 3) image at ``quality``."""
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(np.asarray(x, np.uint8)).convert("RGB").save(buf, "JPEG", quality=quality)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert("RGB"))


def frost_np(x: np.ndarray, p, crop: np.ndarray) -> np.ndarray:
  """c0 * image + c1 * frost crop (uint8 RGB, same shape), clipped to [0, 255]."""
  return np.clip(p[0] * np.asarray(x, np.float64) + p[1] * crop, 0, 255)

