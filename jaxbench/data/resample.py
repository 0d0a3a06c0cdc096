"""PIL-exact resize + center crop on the device (``config.device_resize``).

The host decodes an image, places it top-left on a fixed ``canvas x canvas`` uint8
array and builds a small per-image *table*; one jitted program on the device then
computes, for every image of the batch, exactly the pixels that
:func:`jaxbench.data.pipeline.resize_crop` (PIL's ``Image.resize`` + the center
crop) gives on the host. The JPEG decode stays on the host; the resize (~2 ms of
a ~3.5 ms image on one core) and the crop move to the accelerator.

Exactness comes from doing what Pillow's ``src/libImaging/Resample.c`` does for
8-bit images, operation for operation:

* coefficients (host, float64, in the C code's order): per output pixel ``i`` of an
  axis, ``center = (i + 0.5) * scale``, ``support = filter support * max(scale, 1)``,
  taps ``xmin = (int)(center - support + 0.5)`` .. ``(int)(center + support + 0.5)``
  clamped to the image, weights ``filter((x + xmin - center + 0.5) / max(scale, 1))``
  summed left to right and divided by their sum, then fixed point
  ``(int)(w * 2**22 +- 0.5)`` (``normalize_coeffs_8bpc``, PRECISION_BITS = 22);
* pixels (device, int32): a horizontal pass, each sum starting at ``1 << 21`` and
  ending ``clip(sum >> 22, 0, 255)`` (Pillow's ``clip8``), then the vertical pass
  on those 8-bit values, the same way. An axis whose size does not change is not
  resampled by Pillow; its table here is the identity (one tap of ``1 << 22``).
* pass order: Pillow >= 13 (python-pillow/Pillow#9549) resamples vertically first
  when the height shrinks by more than twice as many pixels as the width
  (``h - new_h > 2 * (w - new_w)`` with ``new_h < h``); older Pillow always goes
  horizontal first. Rounding between the passes makes the order visible, so the
  table carries it (``rs_vf``) and :func:`pillow_order` finds out once per process
  which rule the installed Pillow follows (it refuses a Pillow that follows neither).
* ``nearest`` is not resampled by Pillow but scaled by ``ImagingScaleAffine``:
  source index ``(int)(x0)`` with ``x0 = scale / 2`` accumulated ``+= scale`` per
  pixel; here a one-tap table.

Only the output window that the center crop keeps is computed: the tables hold the
crop's ``size`` columns and rows. An image the device cannot reproduce exactly
(larger than the canvas, smaller than the crop after resizing: torchvision pads
it; or altered by a host-side shift) gets its pixels resized on the host and an
identity table (:func:`identity_table`), so one batch may mix both.

Coefficients are computed with Python floats (C doubles) and ``math`` (libm's
``sin``/``cos``, which Pillow calls), so they match a Pillow built without fused
multiply-adds (x86-64 wheels); the tests compare against the installed Pillow.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

PRECISION_BITS = 32 - 8 - 2   # Pillow's 8-bit fixed point (Resample.c)
ONE = 1 << PRECISION_BITS
HALF = 1 << (PRECISION_BITS - 1)
MAX_CANVAS = 16384
# Table keys a device-resize batch carries (removed by :func:`apply_batch`).
TABLE_KEYS = ("rs_x0", "rs_kx", "rs_y0", "rs_ky", "rs_vf")


# --- Pillow's filters, transliterated (Python floats are C doubles) ---------------------

def _box(x: float) -> float:
  return 1.0 if -0.5 < x <= 0.5 else 0.0


def _bilinear(x: float) -> float:
  x = -x if x < 0.0 else x
  return 1.0 - x if x < 1.0 else 0.0


_F054 = float(np.float32(0.54))   # C: 0.54f + 0.46f * cos(x): float literals
_F046 = float(np.float32(0.46))


def _hamming(x: float) -> float:
  x = -x if x < 0.0 else x
  if x == 0.0:
    return 1.0
  if x >= 1.0:
    return 0.0
  x = x * math.pi
  return math.sin(x) / x * (_F054 + _F046 * math.cos(x))


def _bicubic(x: float) -> float:
  a = -0.5
  x = -x if x < 0.0 else x
  if x < 1.0:
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
  if x < 2.0:
    return (((x - 5) * x + 8) * x - 4) * a
  return 0.0


def _sinc(x: float) -> float:
  if x == 0.0:
    return 1.0
  x = x * math.pi
  return math.sin(x) / x


def _lanczos(x: float) -> float:
  if -3.0 <= x < 3.0:
    return _sinc(x) * _sinc(x / 3)
  return 0.0


# name -> (filter, support); 'nearest' is the affine scaler (no filter).
_FILTERS = {"box": (_box, 0.5), "bilinear": (_bilinear, 1.0), "hamming": (_hamming, 1.0),
            "bicubic": (_bicubic, 2.0), "lanczos": (_lanczos, 3.0)}
FILTERS = ("nearest",) + tuple(_FILTERS)


def _check_filter(name: str) -> None:
  if name not in FILTERS:
    raise ValueError(f"device resize: interpolation {name!r} has no exact device form; "
                     f"supported: {', '.join(FILTERS)}")


# --- host: coefficient tables ------------------------------------------------------------

@functools.lru_cache(maxsize=8192)
def axis_table(in_size: int, out_size: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
  """Pillow's taps for resampling one axis from ``in_size`` to ``out_size`` pixels.

  Returns:
    (starts int32 (out_size,), coefficients int32 (out_size, taps)): output pixel
    ``i`` is ``clip8(HALF + sum_t in[starts[i] + t] * coefficients[i, t])``; taps
    past the image carry 0. Identity (one tap of ``ONE``) when the size is kept.
  """
  _check_filter(interpolation)
  if in_size < 1 or out_size < 1:
    raise ValueError(f"device resize: sizes must be >= 1, got {in_size} -> {out_size}")
  if in_size == out_size:   # Pillow skips the pass (need_horizontal/need_vertical)
    return np.arange(out_size, dtype=np.int32), np.full((out_size, 1), ONE, np.int32)
  if interpolation == "nearest":
    return _nearest_table(in_size, out_size)
  filt, base_support = _FILTERS[interpolation]
  filterscale = scale = float(in_size) / out_size
  if filterscale < 1.0:
    filterscale = 1.0
  support = base_support * filterscale
  ksize = int(math.ceil(support)) * 2 + 1
  inv = 1.0 / filterscale
  starts = np.zeros(out_size, np.int32)
  coeffs = np.zeros((out_size, ksize), np.int32)
  for xx in range(out_size):
    center = 0.0 + (xx + 0.5) * scale
    xmin = max(int(center - support + 0.5), 0)   # int(): C's truncation toward zero
    xmax = min(int(center + support + 0.5), in_size) - xmin
    ws = [filt(((x + xmin) - center + 0.5) * inv) for x in range(xmax)]
    ww = 0.0
    for w in ws:            # left to right, as the C loop sums
      ww += w
    if ww != 0.0:
      ws = [w / ww for w in ws]
    for x, w in enumerate(ws):
      coeffs[xx, x] = int(-0.5 + w * ONE) if w < 0 else int(0.5 + w * ONE)
    starts[xx] = xmin
  return starts, coeffs


def _nearest_table(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
  """``ImagingScaleAffine``: position accumulated in doubles, truncated; a source
  index outside the image leaves the output pixel 0 (coefficient 0)."""
  a = float(in_size) / out_size
  pos = 0.0 + a * 0.5
  starts = np.zeros(out_size, np.int32)
  coeffs = np.zeros((out_size, 1), np.int32)
  for x in range(out_size):
    xin = -1 if pos < 0.0 else int(pos)
    if 0 <= xin < in_size:
      starts[x], coeffs[x, 0] = xin, ONE
    pos += a
  return starts, coeffs


def vertical_first(w: int, h: int, new_w: int, new_h: int, interpolation: str) -> bool:
  """Whether the installed Pillow resamples ``w x h -> new_w x new_h`` vertically first
  (only matters when both axes change; ``nearest`` has no passes)."""
  if interpolation == "nearest" or new_w == w or new_h == h:
    return False
  return pillow_order() == "pillow13" and new_h < h and (h - new_h) > 2 * (w - new_w)


# Sizes where the two rules disagree: (w, h, new_w, new_h, vertical first under pillow13).
_ORDER_PROBES = ((40, 40, 39, 4, True), (40, 40, 12, 20, False), (30, 90, 50, 20, True))


@functools.lru_cache(maxsize=1)
def pillow_order() -> str:
  """'pillow13' (vertical first when the height shrinks much more than the width) or
  'horizontal' (always horizontal first, Pillow < 13), found by resizing a few
  random images with the installed Pillow and comparing with both orders.

  Raises:
    RuntimeError: the installed Pillow matches neither (device resize cannot be exact).
  """
  from PIL import Image
  rng = np.random.default_rng(0)
  votes = set()
  for w, h, nw, nh, v13 in _ORDER_PROBES:
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.BICUBIC))
    x, y = axis_table(w, nw, "bicubic"), axis_table(h, nh, "bicubic")
    hv = _passes(arr, x, y, vertical_first=False)
    new_rule = np.array_equal(ref, _passes(arr, x, y, vertical_first=True) if v13 else hv)
    old_rule = np.array_equal(ref, hv)
    if new_rule != old_rule:   # only probes where the rules differ tell them apart
      votes.add("pillow13" if new_rule else "horizontal")
    elif not new_rule:
      votes.add("neither")
  if len(votes) != 1 or "neither" in votes:
    import PIL
    raise RuntimeError(f"Pillow {PIL.__version__} resamples differently from both pass "
                       "orders jaxbench's device resize knows; use config.device_resize=0")
  return votes.pop()


def _pass(a: np.ndarray, starts: np.ndarray, coeffs: np.ndarray, axis: int) -> np.ndarray:
  """One Pillow pass in NumPy int64 along ``axis`` of uint8 (H, W, 3) (host reference)."""
  a = np.moveaxis(a, axis, 0).astype(np.int64)
  idx = np.clip(starts[:, None] + np.arange(coeffs.shape[1]), 0, a.shape[0] - 1)
  acc = HALF + np.einsum("ok...,ok->o...", a[idx], coeffs.astype(np.int64))
  return np.moveaxis(np.clip(acc >> PRECISION_BITS, 0, 255), 0, axis).astype(np.uint8)


def _passes(a, x, y, vertical_first: bool) -> np.ndarray:
  if vertical_first:
    return _pass(_pass(a, *y, axis=0), *x, axis=1)
  return _pass(_pass(a, *x, axis=1), *y, axis=0)


def host_apply(canvas: np.ndarray, table: dict) -> np.ndarray:
  """:func:`resize_crop` of one image in NumPy on the host (a reference and a check)."""
  x = (np.asarray(table["rs_x0"]), np.asarray(table["rs_kx"]))
  y = (np.asarray(table["rs_y0"]), np.asarray(table["rs_ky"]))
  return _passes(np.asarray(canvas), x, y, bool(table["rs_vf"]))


def max_taps(canvas: int, pp) -> int:
  """The static tap count of every table for images up to ``canvas`` pixels a side
  resized by ``pp`` (Pillow's ksize at the largest downscale, canvas / resize)."""
  _check_filter(pp.interpolation)
  if pp.interpolation == "nearest":
    return 1
  support = _FILTERS[pp.interpolation][1] * max(float(canvas) / pp.resize, 1.0)
  return int(math.ceil(support)) * 2 + 1


def geometry(w: int, h: int, pp) -> Optional[tuple[int, int, int, int]]:
  """(new_w, new_h, left, top) of :func:`jaxbench.data.pipeline.resize_crop`, or None
  where it pads (the resized image is smaller than the crop)."""
  s = pp.size
  if pp.crop == "squash":
    if pp.resize < s:
      return None
    off = (pp.resize - s) // 2
    return pp.resize, pp.resize, off, off
  short, long_ = (w, h) if w <= h else (h, w)
  new_short = pp.resize
  new_long = int(new_short * long_ / short)
  new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
  if new_w < s or new_h < s:
    return None
  return new_w, new_h, int(round((new_w - s) / 2.0)), int(round((new_h - s) / 2.0))


def _window(in_size: int, out_size: int, off: int, pp, taps: int):
  starts, coeffs = axis_table(in_size, out_size, pp.interpolation)
  starts, coeffs = starts[off:off + pp.size], coeffs[off:off + pp.size]
  if coeffs.shape[1] > taps:
    return None
  padded = np.zeros((pp.size, taps), np.int32)
  padded[:, :coeffs.shape[1]] = coeffs
  return starts, padded


def image_table(w: int, h: int, pp, canvas: int, taps: int) -> Optional[dict]:
  """The device table of a ``w x h`` image, or None where the device cannot give
  PIL's pixels (larger than the canvas, padded by the crop, more taps than ``taps``).

  Returns:
    {'rs_x0' int32 (S,), 'rs_kx' int32 (S, taps), 'rs_y0' int32 (S,), 'rs_ky' int32
    (S, taps), 'rs_vf' bool ()}: S = ``pp.size``, the crop's columns and rows;
    ``rs_vf``: the vertical pass comes first.
  """
  if w > canvas or h > canvas:
    return None
  g = geometry(w, h, pp)
  if g is None:
    return None
  new_w, new_h, left, top = g
  x = _window(w, new_w, left, pp, taps)
  y = _window(h, new_h, top, pp, taps)
  if x is None or y is None:
    return None
  return {"rs_x0": x[0], "rs_kx": x[1], "rs_y0": y[0], "rs_ky": y[1],
          "rs_vf": np.bool_(vertical_first(w, h, new_w, new_h, pp.interpolation))}


def identity_table(size: int, taps: int) -> dict:
  """The table that passes a host-resized ``size x size`` image (top-left) through."""
  k = np.zeros((size, taps), np.int32)
  k[:, 0] = ONE
  start = np.arange(size, dtype=np.int32)
  return {"rs_x0": start, "rs_kx": k, "rs_y0": start.copy(), "rs_ky": k.copy(),
          "rs_vf": np.bool_(False)}


def on_canvas(pixels: np.ndarray, canvas: int) -> np.ndarray:
  """uint8 (h, w, 3) -> uint8 (canvas, canvas, 3), the image top-left, zeros elsewhere."""
  out = np.zeros((canvas, canvas, 3), np.uint8)
  out[:pixels.shape[0], :pixels.shape[1]] = pixels
  return out


def check_canvas(canvas, pp, what: str = "config.device_resize") -> int:
  """``canvas`` as an int, or ValueError naming ``what`` (0 = off)."""
  try:
    n = int(canvas)
  except (TypeError, ValueError):
    n = None
  if n is None or n != canvas or isinstance(canvas, bool) or n < 0 or n > MAX_CANVAS:
    raise ValueError(f"{what}={canvas!r}: use 0 (resize on the host) or a canvas side in "
                     f"pixels, an integer in [crop size, {MAX_CANVAS}]")
  if n and pp is not None and n < pp.size:
    raise ValueError(f"{what}={n}: the canvas is smaller than the crop size {pp.size} "
                     f"(use 0 or >= {pp.size}; images up to the canvas side are resized on "
                     "the device)")
  if n and pp is not None and pp.interpolation not in FILTERS:
    raise ValueError(f"{what}={n}: interpolation {pp.interpolation!r} has no exact device "
                     f"form (supported: {', '.join(FILTERS)}); use 0")
  return n


# --- device ---------------------------------------------------------------------------------

def _one(img, x0, kx, y0, ky, vf):
  """One image: uint8 (C, C, 3) canvas -> uint8 (S, S, 3), Pillow's two passes.

  The first pass (along x, or along y for vertical-first images) runs over every
  canvas line of the other axis (lines past the image are zeros and never used) and
  computes only the S kept outputs, gathering the source pixels directly (no
  transposed copy); its 8-bit result (C, S) then goes through the second pass. Each
  tap is one gather, multiplied and summed in int32: exact.
  """
  import jax.numpy as jnp
  c = img.shape[0]
  a0, ka = jnp.where(vf, y0, x0), jnp.where(vf, ky, kx)   # first pass
  b0, kb = jnp.where(vf, x0, y0), jnp.where(vf, kx, ky)   # second pass
  line = jnp.arange(c, dtype=jnp.int32)[:, None]           # every line of the other axis
  acc = jnp.full((c, a0.shape[0], 3), HALF, jnp.int32)
  for t in range(ka.shape[1]):
    pos = jnp.clip(a0 + t, 0, c - 1)[None, :]
    rows, cols = jnp.where(vf, pos, line), jnp.where(vf, line, pos)   # (C, S)
    acc = acc + img[rows, cols].astype(jnp.int32) * ka[None, :, t, None]
  # clip8: Pillow keeps the first pass as an 8-bit image.
  mid = jnp.clip(acc >> PRECISION_BITS, 0, 255).astype(jnp.uint8)   # (C other, S first)
  acc = jnp.full((b0.shape[0], a0.shape[0], 3), HALF, jnp.int32)
  for t in range(kb.shape[1]):
    acc = acc + mid[jnp.clip(b0 + t, 0, c - 1)].astype(jnp.int32) * kb[:, t, None, None]
  out = jnp.clip(acc >> PRECISION_BITS, 0, 255).astype(jnp.uint8)   # (S second, S first)
  return jnp.where(vf, out.transpose(1, 0, 2), out)


def resize_crop(images, x0, kx, y0, ky, vf):
  """Batched device resize + crop.

  Args:
    images: uint8 (B, C, C, 3) canvases.
    x0, y0: int32 (B, S) first source column / row of each output column / row.
    kx, ky: int32 (B, S, K) fixed-point coefficients (:func:`image_table`).
    vf: bool (B,) the vertical pass comes first.

  Returns:
    uint8 (B, S, S, 3), equal to PIL's resize + center crop of each image.
  """
  import jax
  return jax.vmap(_one)(images, x0, kx, y0, ky, vf)


def apply_batch(batch: dict) -> dict:
  """A device-resize batch -> the batch the step expects: 'image' uint8 (B, S, S, 3),
  the table keys dropped, everything else as it was."""
  out = {k: v for k, v in batch.items() if k not in TABLE_KEYS}
  out["image"] = resize_crop(batch["image"], *(batch[k] for k in TABLE_KEYS))
  return out


@functools.lru_cache(maxsize=1)
def _jitted():
  import jax
  return jax.jit(apply_batch)


def finish(batch: dict) -> dict:
  """``apply_batch`` as one jitted program where the batch carries a table (device or
  host arrays; sharded inputs keep their batch sharding); other batches unchanged."""
  if TABLE_KEYS[0] not in batch:
    return batch
  return _jitted()(batch)
