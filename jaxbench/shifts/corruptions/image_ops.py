"""Image operations the corruption kernels are built from, with the reference libraries' semantics.

Two kinds:

* host-side builders of linear operators and sampling plans (NumPy, built once
  per image shape and handed to the kernels as constant arrays): scipy's
  ``gaussian_filter1d`` as a matrix, create_c's anti-aliased disk, PIL's BOX
  resampling weights, the plan of create_c's ``clipped_zoom``;
* device-side building blocks (JAX, jittable, one float32 [0, 1] HWC image):
  separable operators, skimage's HSV conversion, scipy/OpenCV border folding,
  bilinear sampling, create_c's plasma fractal, the glass-blur pixel copies,
  PIL's fixed-point resampling pass.

Every function reproduces one reference function's boundary rules and rounding,
so the kernels in :mod:`jaxbench.shifts.corruptions.device` match the reference
pixel for pixel.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# Full float32 precision for the operator products: the accelerators' default
# precision may use reduced-precision passes, which would move pixels off the reference.
HIGHEST = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------
# Host-side builders of linear operators (exact boundary semantics of the
# reference libraries, built once per image shape and closed over as constants).
# ---------------------------------------------------------------------------

def gauss_op(n: int, sigma: float, mode: str, truncate: float) -> np.ndarray:
  """scipy.ndimage.gaussian_filter1d along one axis as a matrix.

  Args:
    n: length of the axis.
    sigma, mode, truncate: gaussian_filter1d's arguments (mode 'nearest' or 'reflect').
  Returns:
    float32 (n, n) matrix G with G @ v == gaussian_filter1d(v, sigma, mode=mode,
    truncate=truncate) for every (n,) vector v (the identity when sigma ~ 0).
  """
  if sigma <= 1e-15:   # scipy skips such axes
    return np.eye(n, dtype=np.float32)
  from scipy import ndimage
  return ndimage.gaussian_filter1d(np.eye(n), sigma, axis=0, mode=mode,
                                   truncate=truncate).astype(np.float32)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
  """create_c's anti-aliased disk kernel (defocus blur).

  Args:
    radius: disk radius in pixels.
    alias_blur: sigma of the OpenCV Gaussian blur applied to the disk.
  Returns:
    float32 (k, k) kernel summing to ~1: k = 17 for radius <= 8, else 2 radius + 1.
  """
  import cv2
  if radius <= 8:
    grid, ksize = np.arange(-8, 8 + 1), (3, 3)
  else:
    grid, ksize = np.arange(-radius, radius + 1), (5, 5)
  xx, yy = np.meshgrid(grid, grid)
  kernel = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=np.float32)
  kernel /= np.sum(kernel)
  return cv2.GaussianBlur(kernel, ksize=ksize, sigmaX=alias_blur)


def pil_box_weights(in_size: int, out_size: int) -> np.ndarray:
  """PIL's BOX resampling as integer weights in units of 2**-22 (``Resample.c``).

  PIL resamples uint8 images in two passes (horizontal first), each with
  fixed-point coefficients and round-half-up; with these integer weights
  ``(w @ v + 2**21) >> 22`` reproduces one pass bit for bit.

  Args:
    in_size, out_size: axis length before and after resizing.
  Returns:
    int32 (out_size, in_size) weights.
  """
  scale = in_size / out_size
  filterscale = max(scale, 1.0)
  support = 0.5 * filterscale
  weights = np.zeros((out_size, in_size), np.float64)
  for xx in range(out_size):
    center = (xx + 0.5) * scale
    xmin = max(int(center - support + 0.5), 0)
    xmax = min(int(center + support + 0.5), in_size)
    taps = (np.arange(xmin, xmax) - center + 0.5) / filterscale
    w = ((taps > -0.5) & (taps <= 0.5)).astype(np.float64)
    if w.sum():
      w /= w.sum()
    weights[xx, xmin:xmax] = w
  return np.where(weights < 0, -0.5 + weights * (1 << 22),
                  0.5 + weights * (1 << 22)).astype(np.int64).astype(np.int32)


def zoom_plan(n: int, zooms) -> np.ndarray:
  """Per zoom factor (top, step, trim) of create_c's clipped_zoom along one axis.

  clipped_zoom crops ceil(n / z) pixels centred (top), zooms them with
  scipy.ndimage.zoom(order=1) to round(ceil(n / z) * z) pixels, whose output
  pixel i samples input top + i * (ch - 1) / (size - 1), and keeps n of them
  starting at trim. Computed in float64 as the reference does.

  Args:
    n: axis length.
    zooms: the zoom factors (z >= 1).
  Returns:
    float64 (len(zooms), 3): (top, step, trim) per factor.
  """
  plan = []
  for z in zooms:
    ch = int(np.ceil(n / float(z)))
    top = (n - ch) // 2
    size = int(round(ch * float(z)))
    step = (ch - 1) / (size - 1) if size > 1 else 0.0
    trim = (size - n) // 2
    plan.append((top, step, trim))
  return np.array(plan, np.float64)


def sparse_taps(weights: np.ndarray, rows: int, taps: int):
  """Dense resampling weights as a few taps per output pixel.

  Args:
    weights: int32 (m, n) weights (m <= rows), at most ``taps`` nonzero per row.
    rows: output rows (rows beyond m stay zero: padding to a severity-independent shape).
    taps: taps per row.
  Returns:
    (idx, w): int32 (rows, taps) source indices and their weights.
  """
  idx = np.zeros((rows, taps), np.int32)
  w = np.zeros((rows, taps), np.int32)
  for o, row in enumerate(weights):
    nz = np.flatnonzero(row)
    idx[o, :len(nz)], w[o, :len(nz)] = nz, row[nz]
  return idx, w


# ---------------------------------------------------------------------------
# Device-side building blocks (single image, float32 [0, 1], HWC).
# ---------------------------------------------------------------------------

def sep(x, gh, gw):
  """Applies a row and a column operator (a separable linear filter or resize).

  Args:
    x: (H, W) or (H, W, C).
    gh: (H', H) row operator.
    gw: (W', W) column operator.
  Returns:
    gh @ x @ gw.T per channel: (H', W') or (H', W', C).
  """
  if x.ndim == 2:
    return jnp.einsum("ij,jk,lk->il", gh, x, gw, precision=HIGHEST)
  y = jnp.einsum("ij,jwc->iwc", gh, x, precision=HIGHEST)
  return jnp.einsum("kw,iwc->ikc", gw, y, precision=HIGHEST)


def rgb_to_hsv(rgb):
  """skimage.color.rgb2hsv, its tie-breaking included.

  Args:
    rgb: (..., 3) values in [0, 1].
  Returns:
    (..., 3) hue, saturation, value in [0, 1].
  """
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  v = jnp.max(rgb, axis=-1)
  delta = v - jnp.min(rgb, axis=-1)
  safe = jnp.where(delta == 0, 1.0, delta)
  s = jnp.where(delta == 0, 0.0, delta / jnp.where(v == 0, 1.0, v))
  # skimage assigns red, then green, then blue: the last maximum wins.
  h = jnp.where(b == v, 4.0 + (r - g) / safe,
                jnp.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
  h = jnp.where(delta == 0, 0.0, jnp.mod(h / 6.0, 1.0))
  return jnp.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv):
  """skimage.color.hsv2rgb.

  Args:
    hsv: (..., 3) hue, saturation, value in [0, 1].
  Returns:
    (..., 3) RGB in [0, 1].
  """
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  hi = jnp.floor(h * 6)
  f = h * 6 - hi
  p = v * (1 - s)
  q = v * (1 - f * s)
  t = v * (1 - (1 - f) * s)
  hi = jnp.mod(hi.astype(jnp.int32), 6)
  choices = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
  conds = [hi == k for k in range(6)]
  return jnp.stack([jnp.select(conds, [c[ch] for c in choices]) for ch in range(3)], axis=-1)


def reflect_coord(c, n):
  """scipy 'reflect' (half-sample symmetric) coordinate folding into [-0.5, n - 0.5]."""
  t = jnp.mod(c + 0.5, 2 * n)
  return jnp.where(t >= n, 2 * n - t, t) - 0.5


def reflect_index(i, n):
  """Integer index folding of scipy 'reflect' / numpy 'symmetric' (edge repeated): any shape."""
  i = jnp.mod(i, 2 * n)
  return jnp.where(i >= n, 2 * n - 1 - i, i)


def reflect101_index(i, n):
  """Integer index folding of OpenCV BORDER_REFLECT_101 (edge not repeated): any shape."""
  if n == 1:
    return jnp.zeros_like(i)
  i = jnp.mod(i, 2 * n - 2)
  return jnp.where(i >= n, 2 * n - 2 - i, i)


def bilinear(img, ys, xs, index_fn):
  """Bilinear samples of an image at float coordinates.

  Args:
    img: (H, W, C).
    ys, xs: (h, w) float row and column coordinates.
    index_fn: ``index_fn(i, n)`` folds out-of-range integer indices (the border rule).
  Returns:
    (h, w, C) samples.
  """
  h, w = img.shape[:2]
  y0, x0 = jnp.floor(ys), jnp.floor(xs)
  fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  y0i, y1i = index_fn(y0, h), index_fn(y0 + 1, h)
  x0i, x1i = index_fn(x0, w), index_fn(x0 + 1, w)
  top = (1 - fx) * img[y0i, x0i] + fx * img[y0i, x1i]
  bottom = (1 - fx) * img[y1i, x0i] + fx * img[y1i, x1i]
  return (1 - fy) * top + fy * bottom


def plasma(us, decay, mapsize):
  """create_c's diamond-square plasma fractal from its uniform draws.

  The reference fills one (mapsize, mapsize) array in place at strides
  step = mapsize, mapsize / 2, ..., 2. Here each step builds the grid at stride
  step / 2 from the grid at stride step by interleaving the four sub-grids
  (corners, square centres, and the two diamond sets): same values, no scatters.

  Args:
    us: list of 3 * log2(mapsize) arrays of U[0, 1) draws, in the reference's
      order (squares, diamonds, diamonds per step), shapes (n, n), n = 1, 2, 4...
    decay: wibble decay (traced).
    mapsize: power of two (static).
  Returns:
    (mapsize, mapsize) float32 map in [0, 1].
  """
  corner = jnp.zeros((1, 1), jnp.float32)   # the grid at stride `step`
  wibble = jnp.float32(100.0)
  for k in range(int(math.log2(mapsize))):
    def wibbled(a, u):
      return a / 4 + wibble * (-wibble + 2 * wibble * u)
    sq = corner + jnp.roll(corner, -1, axis=0)
    sq = sq + jnp.roll(sq, -1, axis=1)
    centre = wibbled(sq, us[3 * k])
    lt = centre + jnp.roll(centre, 1, axis=0) + corner + jnp.roll(corner, -1, axis=1)
    lt = wibbled(lt, us[3 * k + 1])      # even rows, odd columns
    tt = centre + jnp.roll(centre, 1, axis=1) + corner + jnp.roll(corner, -1, axis=0)
    tt = wibbled(tt, us[3 * k + 2])      # odd rows, even columns
    n = corner.shape[0]
    corner = jnp.stack([jnp.stack([corner, lt], axis=-1), jnp.stack([tt, centre], axis=-1)],
                       axis=1).reshape(2 * n, 2 * n)
    wibble = wibble / decay
  corner = corner - corner.min()
  return corner / corner.max()


def glass_positions(h, w, d, iters):
  """Number of swaps of create_c's glass-blur loop (rows H-d..d+1, cols W-d..d+1).

  Args:
    h, w: image size.
    d: max_delta of the severity.
    iters: iterations of the severity.
  Returns:
    int: iters * (h - 2d) * (w - 2d) (0 for images smaller than 2d).
  """
  return iters * max(h - 2 * d, 0) * max(w - 2 * d, 0)


def glass_permute(n_h, n_w, h, w, d, offsets, length):
  """Source index of every pixel after create_c's sequential local "swaps".

  The reference writes ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on NumPy
  pixel views: the right-hand side holds views, so the second assignment
  copies back the value just written and the step is a copy ``x[h, w] =
  x[h', w']``, not a swap. The copies do not depend on pixel values, so the
  source index map is computed on indices (one loop) and applied with one
  gather.

  Args:
    n_h, n_w: rows and columns the loop visits per iteration (h - 2d, w - 2d).
    h, w: image size.
    d: max_delta of the severity.
    offsets: int8 (length, 2) (dx, dy) per step, in [-d, d - 1].
    length: number of steps (``glass_positions``).
  Returns:
    int32 (h * w,): flat source pixel of every flat pixel.
  """
  perm0 = jnp.arange(h * w, dtype=jnp.int32)
  per_iter = n_h * n_w

  def body(t, perm):
    r = t % per_iter
    row = h - d - r // n_w
    col = w - d - r % n_w
    dx = offsets[t, 0].astype(jnp.int32)
    dy = offsets[t, 1].astype(jnp.int32)
    p = row * w + col
    q = (row + dy) * w + (col + dx)
    return perm.at[p].set(perm[q])

  return jax.lax.fori_loop(0, length, body, perm0, unroll=4)


def zoom_axis(x, plan, axis):
  """Linear resampling along ``axis`` per one clipped_zoom plan.

  Args:
    x: (H, W, C).
    plan: (3,) (top, step, trim) of one zoom factor (``zoom_plan``).
    axis: 0 or 1.
  Returns:
    x's shape: the zoomed and trimmed image along ``axis``.
  """
  n = x.shape[axis]
  pos = plan[0] + (jnp.arange(n, dtype=jnp.float32) + plan[2]) * plan[1]
  i0 = jnp.floor(pos).astype(jnp.int32)
  frac = pos - i0
  i1 = jnp.minimum(i0 + 1, n - 1)
  i0 = jnp.clip(i0, 0, n - 1)
  shape = [1] * x.ndim
  shape[axis] = n
  frac = frac.reshape(shape)
  return (1 - frac) * jnp.take(x, i0, axis=axis) + frac * jnp.take(x, i1, axis=axis)


def pil_pass(v, taps, axis):
  """One PIL uint8 resampling pass along axis: (sum_t w_t v[i_t] + 2^21) >> 22.

  Integer weights and int32 sums, as PIL's Resample.c; each output pixel reads
  its few source pixels (the operators are banded), one 1-D gather per tap
  (a 2-D index gather is 100x slower on CPU).

  Args:
    v: int32 image (H, W[, C]) of uint8 values.
    taps: (idx, w) int32 (out, taps) from ``sparse_taps``.
    axis: the axis resampled.
  Returns:
    int32 image with ``out`` entries along ``axis``, values in [0, 255].
  """
  idx, w = taps
  shape = [1] * v.ndim
  shape[axis] = w.shape[0]
  acc = sum(jnp.take(v, idx[:, t], axis=axis) * w[:, t].reshape(shape)
            for t in range(w.shape[1]))
  return jnp.clip((acc + (1 << 21)) >> 22, 0, 255)
