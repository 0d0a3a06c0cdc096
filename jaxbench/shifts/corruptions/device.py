"""Device-side corruption kernels: jittable, one float32 [0, 1] HWC image at a time.

Each kernel is a triple (``Kernel``):

* ``params(res, severity, (H, W)) -> (arrays, static)``: numeric parameters
  built on the host once per image size (blur operators, CDF tables, ...).
  ``arrays`` have shapes that do not depend on the severity, so one compilation
  serves all five; ``static`` holds the few Python values shapes depend on;
* ``sample(key, x, arrays, static) -> fields``: all the randomness;
* ``apply(x, fields, arrays, static) -> x``: deterministic,

so tests can feed the random fields the reference drew and compare outputs
pixel for pixel. The shift objects (:mod:`jaxbench.shifts.corruptions.shifts`)
vmap ``apply(sample(...))`` over a batch with per-example keys.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.shifts.corruptions.image_ops import (
    HIGHEST, bilinear, disk_kernel, gauss_op, glass_permute, glass_positions, hsv_to_rgb,
    pil_box_weights, pil_pass, plasma, reflect101_index, reflect_coord, reflect_index,
    rgb_to_hsv, sep, sparse_taps, zoom_axis, zoom_plan)
from jaxbench.shifts.corruptions.tables import PARAMS, is_device, table


@dataclasses.dataclass(frozen=True)
class Kernel:
  """One device corruption: ``params`` (host, per image size), ``sample`` (randomness),
  ``apply`` (deterministic); signatures in the module docstring."""
  params: Callable[..., tuple[dict, tuple]]
  sample: Callable[..., dict]
  apply: Callable[..., jax.Array]


def _scalar(v):
  return np.asarray(v, np.float32)


def _p_scalar(name):
  def params(res, severity, hw):
    return {"c": _scalar(table(name, severity, res))}, ()
  return params


def _gaussian_noise_sample(key, x, a, s):
  return {"z": jax.random.normal(key, x.shape, jnp.float32)}


def _gaussian_noise_apply(x, f, a, s):
  return jnp.clip(x + a["c"] * f["z"], 0, 1)


def _shot_noise_params(res, severity, hw):
  from scipy import stats
  rate = table("shot_noise", severity, res)
  # Poisson CDFs for the 256 uint8 intensities v (lambda = v / 255 * rate),
  # padded to the longest table of the parameter set: same shape every severity.
  most = max(PARAMS[res]["shot_noise"])
  kmax = int(np.ceil(most + 12 * np.sqrt(most) + 20))
  lam = np.arange(256) / 255.0 * rate
  cdf = stats.poisson.cdf(np.arange(kmax + 1)[None, :], lam[:, None])
  cdf[:, -1] = 1.0
  return {"c": _scalar(rate), "cdf": cdf.astype(np.float32)}, ()


def _shot_noise_sample(key, x, a, s):
  """Poisson(x * c) counts by inverse-CDF lookup.

  Inputs lie on the uint8 grid (the pipeline's images), so lambda takes 256
  values whose CDFs are tabulated; a binary search per value replaces
  jax.random.poisson's rejection loops (100x slower on CPU).
  """
  cdf = a["cdf"]
  n = cdf.shape[1]
  level = jnp.clip(jnp.round(x * 255), 0, 255).astype(jnp.int32)
  u = jax.random.uniform(key, x.shape, jnp.float32)
  flat = cdf.reshape(-1)
  lo = jnp.zeros(x.shape, jnp.int32)
  hi = jnp.full(x.shape, n - 1, jnp.int32)
  for _ in range(int(np.ceil(np.log2(n)))):   # smallest k with CDF(k) >= u
    mid = (lo + hi) // 2
    below = flat[level * n + mid] < u
    lo = jnp.where(below, mid + 1, lo)
    hi = jnp.where(below, hi, mid)
  return {"k": lo.astype(jnp.float32)}


def _shot_noise_apply(x, f, a, s):
  return jnp.clip(f["k"] / a["c"], 0, 1)


def _impulse_noise_sample(key, x, a, s):
  return {"u": jax.random.uniform(key, x.shape)}


def _impulse_noise_apply(x, f, a, s):
  # skimage random_noise(mode='s&p', salt_vs_pepper=0.5): each value is replaced
  # with probability `amount`, by 1 or 0 with equal odds. One uniform draw
  # decides both: u <= amount / 2 -> salt, amount / 2 < u <= amount -> pepper.
  u = f["u"]
  return jnp.where(u <= a["c"], jnp.where(u <= a["c"] / 2, 1.0, 0.0), x)


def _speckle_noise_apply(x, f, a, s):
  return jnp.clip(x + x * a["c"] * f["z"], 0, 1)


def _gaussian_blur_params(res, severity, hw):
  sigma = table("gaussian_blur", severity, res)
  return {"gh": gauss_op(hw[0], sigma, "nearest", 4.0),
          "gw": gauss_op(hw[1], sigma, "nearest", 4.0)}, ()


def _no_fields(key, x, a, s):
  return {}


def _gaussian_blur_apply(x, f, a, s):
  return jnp.clip(sep(x, a["gh"], a["gw"]), 0, 1)


def _glass_blur_params(res, severity, hw):
  sigma, d, iters = table("glass_blur", severity, res)
  return ({"gh": gauss_op(hw[0], sigma, "nearest", 4.0),
           "gw": gauss_op(hw[1], sigma, "nearest", 4.0)}, (int(d), int(iters)))


def _glass_blur_sample(key, x, a, s):
  d, iters = s
  n = glass_positions(x.shape[0], x.shape[1], d, iters)
  # (dx, dy) per swap, uniform in [-d, d - 1] as np.random.randint(-d, d).
  return {"offsets": jax.random.randint(key, (n, 2), -d, d, jnp.int32).astype(jnp.int8)}


def _glass_blur_apply(x, f, a, s):
  d, iters = s
  h, w, c = x.shape
  # np.uint8(gaussian(x) * 255): truncation to integers.
  blurred = jnp.floor(jnp.clip(sep(x, a["gh"], a["gw"]), 0, 1) * 255)
  n_h, n_w = max(h - 2 * d, 0), max(w - 2 * d, 0)
  length = iters * n_h * n_w
  if length:
    perm = glass_permute(n_h, n_w, h, w, d, f["offsets"], length)
    blurred = blurred.reshape(h * w, c)[perm].reshape(h, w, c)
  return jnp.clip(sep(blurred / 255, a["gh"], a["gw"]), 0, 1)


def _defocus_blur_params(res, severity, hw):
  radius, alias = table("defocus_blur", severity, res)
  # Pad every severity's kernel to the largest one of the set: same shapes.
  size = max(disk_kernel(r, b).shape[0] for r, b in PARAMS[res]["defocus_blur"])
  kernel = disk_kernel(radius, alias)
  pad = (size - kernel.shape[0]) // 2
  return {"kernel": np.pad(kernel, pad).astype(np.float32)}, ()


def _defocus_blur_apply(x, f, a, s):
  k = a["kernel"]
  size = k.shape[0]
  r = size // 2
  h, w = x.shape[:2]
  # cv2.filter2D: correlation with BORDER_REFLECT_101 (numpy's 'reflect'). Done
  # as an FFT product with the flipped kernel (a 21x21 direct convolution is
  # 20x slower on CPU); the circular wrap only touches the discarded border.
  xp = jnp.pad(x, ((r, r), (r, r), (0, 0)), mode="reflect")
  hp, wp = xp.shape[:2]
  kp = jnp.zeros((hp, wp), jnp.float32).at[:size, :size].set(k[::-1, ::-1])
  spectrum = jnp.fft.rfft2(xp, axes=(0, 1)) * jnp.fft.rfft2(kp)[:, :, None]
  y = jnp.fft.irfft2(spectrum, s=(hp, wp), axes=(0, 1))
  return jnp.clip(y[2 * r:2 * r + h, 2 * r:2 * r + w], 0, 1)


def _zoom_blur_params(res, severity, hw):
  zooms = table("zoom_blur", severity, res)
  most = max(len(z) for z in PARAMS[res]["zoom_blur"])
  plans = []
  for n in hw:
    plan = zoom_plan(n, zooms)
    plans.append(np.pad(plan, ((0, most - len(plan)), (0, 0))).astype(np.float32))
  mask = np.zeros(most, np.float32)
  mask[:len(zooms)] = 1
  return {"plan_h": plans[0], "plan_w": plans[1], "mask": mask,
          "count": _scalar(len(zooms))}, ()


def _zoom_blur_apply(x, f, a, s):
  def one(ph, pw):
    return zoom_axis(zoom_axis(x, ph, 0), pw, 1)
  layers = jax.vmap(one)(a["plan_h"], a["plan_w"])
  total = jnp.einsum("z,zhwc->hwc", a["mask"], layers, precision=HIGHEST)
  return jnp.clip((x + total) / (a["count"] + 1), 0, 1)


def _fog_params(res, severity, hw):
  strength, decay = table("fog", severity, res)
  mapsize = 1 << (max(hw) - 1).bit_length()
  return {"c": _scalar(strength), "decay": _scalar(decay)}, (int(mapsize),)


def _fog_sample(key, x, a, s):
  (mapsize,) = s
  steps = int(math.log2(mapsize))
  keys = jax.random.split(key, 3 * steps)
  us = [jax.random.uniform(keys[3 * k + j], (1 << k, 1 << k), jnp.float32)
        for k in range(steps) for j in range(3)]
  return {"u": us}


def _fog_apply(x, f, a, s):
  (mapsize,) = s
  h, w = x.shape[:2]
  max_val = x.max()
  fractal = plasma(f["u"], a["decay"], mapsize)[:h, :w, None]
  y = x + a["c"] * fractal
  return jnp.clip(y * max_val / (max_val + a["c"]), 0, 1)


def _brightness_apply(x, f, a, s):
  hsv = rgb_to_hsv(x)
  hsv = hsv.at[..., 2].set(jnp.clip(hsv[..., 2] + a["c"], 0, 1))
  return jnp.clip(hsv_to_rgb(hsv), 0, 1)


def _saturate_params(res, severity, hw):
  scale, shift = table("saturate", severity, res)
  return {"scale": _scalar(scale), "shift": _scalar(shift)}, ()


def _saturate_apply(x, f, a, s):
  hsv = rgb_to_hsv(x)
  hsv = hsv.at[..., 1].set(jnp.clip(hsv[..., 1] * a["scale"] + a["shift"], 0, 1))
  return jnp.clip(hsv_to_rgb(hsv), 0, 1)


def _contrast_apply(x, f, a, s):
  means = jnp.mean(x, axis=(0, 1), keepdims=True)
  return jnp.clip((x - means) * a["c"] + means, 0, 1)



def _pixelate_params(res, severity, hw):
  c = table("pixelate", severity, res)
  out = {}
  for axis, n in zip("hw", hw):
    small = max(int(n * cc) for cc in PARAMS[res]["pixelate"])
    # Taps per output pixel: at most ceil(n / m) + 1 over the set's severities.
    taps = max(int(np.ceil(n / int(n * cc))) + 1 for cc in PARAMS[res]["pixelate"])
    m = int(n * c)
    out[f"down_{axis}"] = sparse_taps(pil_box_weights(n, m), small, taps)
    # Upsampling reads the first m of the `small` rows; padded rows stay zero.
    out[f"up_{axis}"] = sparse_taps(pil_box_weights(m, n), n, taps)
  return out, ()


def _pixelate_apply(x, f, a, s):
  # PIL BOX down then BOX up (create_c), each resize horizontal pass first.
  v = jnp.round(x * 255).astype(jnp.int32)
  v = pil_pass(pil_pass(v, a["down_w"], 1), a["down_h"], 0)
  v = pil_pass(pil_pass(v, a["up_w"], 1), a["up_h"], 0)
  return v.astype(jnp.float32) / 255


def _elastic_params(res, severity, hw):
  alpha, sigma, jitter = table("elastic_transform", severity, res)
  h, w = hw
  # create_c: centre square of the (row, col) shape, used as cv2 (x, y) points.
  centre = np.float32(hw) // 2
  size = min(hw) // 3
  pts1 = np.float32([centre + size, [centre[0] + size, centre[1] - size], centre - size])
  design = np.concatenate([pts1.astype(np.float64), np.ones((3, 1))], axis=1)
  return ({"alpha": _scalar(alpha), "jitter": _scalar(jitter), "pts1": pts1,
           "solve": np.linalg.inv(design).astype(np.float32),
           "gh": gauss_op(h, sigma, "reflect", 3.0),
           "gw": gauss_op(w, sigma, "reflect", 3.0)}, ())


def _elastic_sample(key, x, a, s):
  k1, k2, k3 = jax.random.split(key, 3)
  h, w = x.shape[:2]
  return {"affine": jax.random.uniform(k1, (3, 2), jnp.float32, -1, 1) * a["jitter"],
          "dx": jax.random.uniform(k2, (h, w), jnp.float32, -1, 1),
          "dy": jax.random.uniform(k3, (h, w), jnp.float32, -1, 1)}


def _elastic_apply(x, f, a, s):
  h, w = x.shape[:2]
  pts2 = a["pts1"] + f["affine"]
  # cv2.getAffineTransform(pts1, pts2): M (2, 3) with M @ [x, y, 1] = pts2.
  m = jnp.matmul(a["solve"], pts2, precision=HIGHEST).T
  det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
  inv = jnp.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]]) / det
  shift = -jnp.dot(inv, m[:, 2], precision=HIGHEST)
  # cv2.warpAffine(dsize=(W, H), BORDER_REFLECT_101): dst(x, y) = src(M^-1 (x, y)).
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                        jnp.arange(w, dtype=jnp.float32), indexing="ij")
  sx = inv[0, 0] * xs + inv[0, 1] * ys + shift[0]
  sy = inv[1, 0] * xs + inv[1, 1] * ys + shift[1]
  warped = bilinear(x, sy, sx, reflect101_index)
  dx = sep(f["dx"], a["gh"], a["gw"]) * a["alpha"]
  dy = sep(f["dy"], a["gh"], a["gw"]) * a["alpha"]
  # map_coordinates(order=1, mode='reflect') at (y + dy, x + dx).
  cy = reflect_coord(ys + dy, h)
  cx = reflect_coord(xs + dx, w)
  return jnp.clip(bilinear(warped, cy, cx, reflect_index), 0, 1)


def _spatter_mud_params(res, severity, hw):
  loc, scale, sigma, thr, mud_sigma, mud = table("spatter", severity, res)
  return ({"loc": _scalar(loc), "scale": _scalar(scale), "thr": _scalar(thr),
           "gh": gauss_op(hw[0], sigma, "nearest", 4.0),
           "gw": gauss_op(hw[1], sigma, "nearest", 4.0),
           "mh": gauss_op(hw[0], mud_sigma, "nearest", 4.0),
           "mw": gauss_op(hw[1], mud_sigma, "nearest", 4.0)}, ())


def _spatter_mud_sample(key, x, a, s):
  return {"z": jax.random.normal(key, x.shape[:2], jnp.float32)}


def _spatter_mud_apply(x, f, a, s):
  liquid = sep(a["loc"] + a["scale"] * f["z"], a["gh"], a["gw"])
  m = sep((liquid > a["thr"]).astype(jnp.float32), a["mh"], a["mw"])
  m = jnp.where(m < 0.8, 0.0, m)[..., None]
  mud = jnp.array([63, 42, 20], jnp.float32) / 255
  return jnp.clip(x * (1 - m) + mud * m, 0, 1)


_KERNELS = {
    "gaussian_noise": Kernel(_p_scalar("gaussian_noise"), _gaussian_noise_sample,
                              _gaussian_noise_apply),
    "shot_noise": Kernel(_shot_noise_params, _shot_noise_sample, _shot_noise_apply),
    "impulse_noise": Kernel(_p_scalar("impulse_noise"), _impulse_noise_sample,
                             _impulse_noise_apply),
    "speckle_noise": Kernel(_p_scalar("speckle_noise"), _gaussian_noise_sample,
                             _speckle_noise_apply),
    "gaussian_blur": Kernel(_gaussian_blur_params, _no_fields, _gaussian_blur_apply),
    "glass_blur": Kernel(_glass_blur_params, _glass_blur_sample, _glass_blur_apply),
    "defocus_blur": Kernel(_defocus_blur_params, _no_fields, _defocus_blur_apply),
    "zoom_blur": Kernel(_zoom_blur_params, _no_fields, _zoom_blur_apply),
    "fog": Kernel(_fog_params, _fog_sample, _fog_apply),
    "brightness": Kernel(_p_scalar("brightness"), _no_fields, _brightness_apply),
    "contrast": Kernel(_p_scalar("contrast"), _no_fields, _contrast_apply),
    "saturate": Kernel(_saturate_params, _no_fields, _saturate_apply),
    "pixelate": Kernel(_pixelate_params, _no_fields, _pixelate_apply),
    "elastic_transform": Kernel(_elastic_params, _elastic_sample, _elastic_apply),
    "spatter": Kernel(_spatter_mud_params, _spatter_mud_sample, _spatter_mud_apply),
}


@functools.lru_cache(maxsize=None)
def device_params(name: str, severity: int, res: str, hw: tuple[int, int]):
  """The numeric parameters of a device corruption for one image size (cached).

  Args:
    name: a device corruption (``is_device(name, severity, res)``).
    severity: 1..5.
    res: 'imagenet' or 'cifar' (the parameter table).
    hw: (H, W) of the images.
  Returns:
    (arrays, static): a dict of NumPy arrays whose shapes depend on (res, hw)
    only, and a tuple of Python values for the kernel's static arguments.
  Raises:
    ValueError: ``name`` at ``severity`` is host-side.
  """
  if not is_device(name, severity, res):
    raise ValueError(f"corruption {name!r} severity {severity} is host-side")
  return _KERNELS[name].params(res, severity, tuple(hw))


def kernel(name: str) -> Kernel:
  """The (params, sample, apply) triple of a device corruption (KeyError for a host one)."""
  return _KERNELS[name]


