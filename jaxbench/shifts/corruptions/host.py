"""Host-side corruption kernels: NumPy / OpenCV / PIL, one image at a time.

The corruptions built on sequential algorithms (JPEG coding, Canny edges and a
chamfer distance transform, ImageMagick-style motion blur) run here, in the
input pipeline, and are used as they are. Every function takes the random
draws the reference made as arguments (``np.random.Generator`` draws in
:class:`jaxbench.shifts.corruptions.shifts.HostCorruption`), so tests can
replay the reference's NumPy streams. Inputs are uint8 (H, W, 3); outputs are
float in [0, 255] unless stated otherwise (the caller truncates to uint8, as
create_c's ``np.uint8``).

ImageNet-P's generator (:mod:`jaxbench.shifts.perturbations`, create_p) uses the
pieces create_p shares with create_c from here, so each has one implementation:
``motion_blur_np``, ``clipped_zoom``, ``snow_whiten`` and ``water_splash``.
"""
from __future__ import annotations

import io
import math

import numpy as np


def motion_blur_taps(radius: int, sigma: float, angle: float, h: int, w: int):
  """The taps of the imagecorruptions motion blur (create_c used ImageMagick's
  MotionBlurImage): a one-sided Gaussian of width 2r+1 along the angle.

  Args:
    radius, sigma: the blur's radius (pixels) and Gaussian sigma.
    angle: direction in degrees.
    h, w: image size; taps beyond it are dropped.
  Returns:
    list of (weight, dy, dx): float weight, int pixel offsets.
  """
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
  """Motion blur as a sum of edge-replicated shifted copies.

  out[y, x] = sum_i k_i img[y - dy_i, x - dx_i] over ``motion_blur_taps``.

  Args:
    x: (H, W) or (H, W, C), any numeric dtype.
    radius, sigma, angle: see ``motion_blur_taps``.
  Returns:
    float64 of x's shape (x's value range).
  """
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


def clipped_zoom(img: np.ndarray, zoom: float) -> np.ndarray:
  """create_c's (and create_p's) clipped_zoom: centre crop, scipy zoom(order=1), centre trim.

  The reference crops a square of ceil(H / zoom) pixels; this crops ceil(H / zoom)
  by ceil(W / zoom) (the same on square images) and trims the zoomed crop back
  to (H, W), centred.

  Args:
    img: (H, W, C).
    zoom: zoom factor >= 1.
  Returns:
    (H, W, C) of img's dtype (a view of the zoomed crop).
  """
  from scipy.ndimage import zoom as scizoom
  h, w = img.shape[:2]
  ch0 = int(np.ceil(h / float(zoom)))
  top0 = (h - ch0) // 2
  ch1 = int(np.ceil(w / float(zoom)))
  top1 = (w - ch1) // 2
  out = scizoom(img[top0:top0 + ch0, top1:top1 + ch1], (zoom, zoom, 1), order=1)
  top, left = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
  return out[top:top + h, left:left + w]


def snow_whiten(x: np.ndarray, weight: float) -> np.ndarray:
  """create_c's (and create_p's) brightening of the image under the snow.

  Args:
    x: float (H, W, 3) in [0, 1].
    weight: the image weight w (snow's last parameter; 0.85 in create_p).
  Returns:
    (H, W, 3): w x + (1 - w) max(x, 1.5 grey + 0.5), grey from OpenCV's RGB2GRAY.
  """
  import cv2
  h, w = x.shape[:2]
  grey = cv2.cvtColor(np.float32(x), cv2.COLOR_RGB2GRAY).reshape(h, w, 1)
  return weight * x + (1 - weight) * np.maximum(x, grey * 1.5 + 0.5)


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
  x = np.asarray(x, np.float32) / 255.
  # create_c's clipped_zoom trims the zoomed layer to the image size (centred)
  # *before* the motion blur; imagecorruptions blurs the larger layer and crops
  # after, which pulls snow from beyond the border into the edge pixels (and,
  # through the 180-degree copy, into the opposite edges).
  layer = clipped_zoom(layer[..., None], p[2])
  layer[layer < p[3]] = 0
  layer = np.clip(layer.squeeze(), 0, 1)
  layer = motion_blur_np(layer, radius=p[4], sigma=p[5], angle=angle)
  layer = np.round(layer * 255).astype(np.uint8) / 255.
  layer = layer[..., None]
  x = snow_whiten(x, p[6])
  return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


# The water colour (create_c paints BGR (238, 238, 175)); the reference's BGRA
# round trip only adds and drops an alpha channel.
WATER = np.array([175, 238, 238], np.float32) / 255.


def water_splash(x: np.ndarray, liquid: np.ndarray, intensity: float) -> np.ndarray:
  """create_c's (and create_p's) water spatter over an image, from a liquid layer.

  The splash map is the layer times an edge map of it: Canny edges of the
  uint8 layer, their chamfer distance (truncated at 20, blurred, histogram
  equalised), an emboss filter and a blur, all in OpenCV as the reference;
  normalised to peak 1 and scaled by ``intensity``.

  Args:
    x: float32 (H, W, 3) image in [0, 1].
    liquid: float (H, W) blurred N(loc, scale) layer, values below the threshold set to 0.
    intensity: splash strength (spatter's 5th parameter; 0.6 in create_p).
  Returns:
    float32 (H, W, 3): x + splash * WATER, not clipped.
  """
  import cv2
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
  m = (m / peak if peak > 0 else m * 0) * intensity
  return x + m[..., None] * WATER


def spatter_water_np(x: np.ndarray, p, liquid: np.ndarray) -> np.ndarray:
  """Spatter at the water severities from the reference's random draw.

  Args:
    x: uint8 (H, W, 3).
    p: the severity's spatter tuple (see PARAMS; p[5] == 0).
    liquid: the (H, W) N(loc, scale) draw.
  Returns:
    float32 (H, W, 3) in [0, 255].
  """
  from scipy import ndimage
  x = np.asarray(x, np.float32) / 255.
  liquid = ndimage.gaussian_filter(liquid, p[2], mode="nearest", truncate=4.0)
  liquid[liquid < p[3]] = 0
  return np.clip(water_splash(x, liquid, p[4]), 0, 1) * 255


def jpeg_np(x: np.ndarray, quality: int) -> np.ndarray:
  """PIL JPEG encode/decode of an image at ``quality``.

  Args:
    x: uint8 (H, W, 3).
    quality: JPEG quality 1..100.
  Returns:
    uint8 (H, W, 3): the decoded JPEG.
  """
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(np.asarray(x, np.uint8)).convert("RGB").save(buf, "JPEG", quality=quality)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert("RGB"))


def frost_np(x: np.ndarray, p, crop: np.ndarray) -> np.ndarray:
  """Frost blend from the reference's random crop.

  Args:
    x: uint8 (H, W, 3).
    p: the severity's (image weight c0, frost weight c1).
    crop: uint8 (H, W, 3) RGB crop of a frost picture (``frost.frost_texture``).
  Returns:
    float64 (H, W, 3): c0 * x + c1 * crop, clipped to [0, 255].
  """
  return np.clip(p[0] * np.asarray(x, np.float64) + p[1] * crop, 0, 255)

