"""Corruption shift objects, registered as ``imagenet_c``, ``cifar10_c`` and ``corrupt``.

``make`` builds a ``DeviceCorruption`` (``device_fn(keys, images) -> images``,
jittable, vmapped over the batch with per-example keys; kernels from
:mod:`~jaxbench.shifts.corruptions.device`) or a ``HostCorruption``
(``host_fn(image_uint8, rng) -> uint8``, one image in the input pipeline;
kernels from :mod:`~jaxbench.shifts.corruptions.host`), whichever side the
corruption at that severity runs on (``tables.is_device``).

Both carry the canonical ``spec`` (the results key) and ``provenance``
(``source='generated'``: a variant of ImageNet-C, never the official files),
and apply the official files' JPEG save when ``jpeg_quality`` is set (see
:mod:`jaxbench.shifts.corruptions`); device corruptions run that round trip on
the host through ``jax.pure_callback``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.registry import format_spec
from jaxbench.shifts import SHIFTS
from jaxbench.shifts.corruptions.device import device_params, kernel
from jaxbench.shifts.corruptions.frost import frost_dir, frost_texture
from jaxbench.shifts.corruptions.host import (
    frost_np, jpeg_np, motion_blur_np, snow_np, spatter_water_np)
from jaxbench.shifts.corruptions.tables import is_device, table


def _as_keys(keys, n: int):
  """(N,) typed keys from (N,) typed keys, one key (split), or raw (N, 2) uint32."""
  keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
  if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
    if keys.ndim == 0:
      return jax.random.split(keys, n)
    return keys
  if keys.ndim == 1:   # one raw key
    return jax.random.split(jax.random.wrap_key_data(keys), n)
  return jax.random.wrap_key_data(keys)


def _jpeg_batch(x: jax.Array, quality: int) -> jax.Array:
  """The official files' save: JPEG round trip of (N, H, W, 3) images on the uint8 grid.

  Args:
    x: float32 (N, H, W, 3) in [0, 1], values k/255 (already quantized).
    quality: JPEG quality (85 for ImageNet-C).
  Returns:
    float32 (N, H, W, 3): the decoded JPEG / 255.
  """
  def host(a):
    a = np.round(np.asarray(a, np.float32) * 255).astype(np.uint8)
    out = np.stack([jpeg_np(im, quality) for im in a]) if len(a) else a
    return (out.astype(np.float32) / 255).astype(np.float32)
  return jax.pure_callback(host, jax.ShapeDtypeStruct(x.shape, jnp.float32), x,
                           vmap_method="sequential")


# Default jpeg_quality per spec family: ImageNet-C files on disk are JPEG q85.
JPEG_DEFAULT = {"imagenet_c": 85, "cifar10_c": None, "corrupt": None}


def _check_jpeg(quality, quantize=True):
  """``quality`` if it is None or an int 1..100 with ``quantize``, else a ValueError."""
  if quality is None:
    return None
  if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
    raise ValueError(f"jpeg_quality={quality!r}: expected an int in 1..100 (85 as the "
                     "official ImageNet-C files) or None for no JPEG round trip")
  if not quantize:
    raise ValueError(f"jpeg_quality={quality} needs quantize=True: a JPEG file holds "
                     "uint8 pixels (for float outputs pass jpeg_quality=None too)")
  return quality


def _quantize(x):
  # The reference stores np.uint8(values): truncation. The small offset keeps
  # float32 round-off just below an integer from dropping a whole level.
  return jnp.floor(x * 255 + 1e-3) / 255


@dataclasses.dataclass(frozen=True)
class _Corruption:
  """What device and host corruptions share: the name, severity, parameter set,
  spec family and JPEG save, and from them ``spec``, ``params``, ``provenance``."""
  name: str
  severity: int
  res: str = "imagenet"
  family: str = "imagenet_c"   # spec name the object was built under
  # JPEG round trip of the output at this quality (None: none); see module docstring.
  jpeg_quality: Optional[int] = None

  @property
  def spec(self) -> str:
    """Canonical spec (the results key): options that change outputs included."""
    if self.family == "corrupt":
      kwargs = {"name": self.name, "severity": self.severity, "res": self.res}
    else:
      kwargs = {"corruption": self.name, "severity": self.severity}
    if not getattr(self, "quantize", True):
      kwargs["quantize"] = False
    if self.jpeg_quality != JPEG_DEFAULT.get(self.family):
      kwargs["jpeg_quality"] = self.jpeg_quality
    return format_spec(self.family, (), kwargs)

  @property
  def params(self):
    """create_c's parameters of this corruption and severity (``tables.table``)."""
    return table(self.name, self.severity, self.res)

  @property
  def provenance(self) -> dict:
    """What generated the images, recorded with every result row."""
    return {"source": "generated", "reference": "hendrycks/robustness create_c "
            f"({'make_cifar_c' if self.res == 'cifar' else 'make_imagenet_c'}.py)",
            "corruption": self.name, "severity": self.severity, "res": self.res,
            "kind": self.kind, "jpeg_quality": self.jpeg_quality}


@dataclasses.dataclass(frozen=True)
class DeviceCorruption(_Corruption):
  """A corruption computed on device: ``device_fn(keys, images) -> images``."""
  quantize: bool = True
  kind: str = dataclasses.field(default="device", init=False)

  def device_fn(self, keys, images):
    """Corrupts a batch.

    Args:
      keys: (N,) per-example PRNG keys (one key is split; raw (N, 2) uint32 accepted).
      images: float32 (N, H, W, 3) in [0, 1] (uint8 accepted).
    Returns:
      float32 (N, H, W, 3) in [0, 1]; on the uint8 grid (truncated, as the
      reference's np.uint8) when ``quantize``, then JPEG round-tripped at
      ``jpeg_quality`` when set.
    """
    images = jnp.asarray(images)
    if images.dtype == jnp.uint8:
      images = images.astype(jnp.float32) / 255
    images = images.astype(jnp.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"{self.spec}: images must be (N, H, W, 3), got {images.shape}")
    n, h, w, _ = images.shape
    keys = _as_keys(keys, n)
    arrays, static = device_params(self.name, self.severity, self.res, (h, w))
    kern = kernel(self.name)
    arrays = jax.tree.map(jnp.asarray, arrays)

    def one(key, x):
      return kern.apply(x, kern.sample(key, x, arrays, static), arrays, static)

    out = jax.vmap(one)(keys, images)
    if not self.quantize:
      return out
    out = _quantize(out)
    return _jpeg_batch(out, self.jpeg_quality) if self.jpeg_quality else out


@dataclasses.dataclass(frozen=True)
class HostCorruption(_Corruption):
  """A corruption computed per image on the host: ``host_fn(image_uint8, rng) -> uint8``."""
  frost_dir: Optional[str] = None
  kind: str = dataclasses.field(default="host", init=False)

  def __post_init__(self):
    _check_jpeg(self.jpeg_quality)
    if self.name == "frost":
      frost_dir(self.frost_dir)   # fail at build time, not in a pipeline worker

  def host_fn(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Corrupts one image.

    Args:
      image: uint8 (H, W, 3).
      rng: all randomness (seeded from (seed, example id) by the pipeline).
    Returns:
      uint8 (H, W, 3), JPEG round-tripped at ``jpeg_quality`` when set.
    Raises:
      ValueError: the image is not uint8 (H, W, 3).
    """
    x = np.asarray(image)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[-1] != 3:
      raise ValueError(f"{self.spec}: expected a uint8 (H, W, 3) image, got "
                       f"{x.dtype} {x.shape}")
    p = self.params
    h, w = x.shape[:2]
    if self.name == "jpeg_compression":
      out = jpeg_np(x, p)
    elif self.name == "motion_blur":
      out = motion_blur_np(x, p[0], p[1], rng.uniform(-45, 45))
    elif self.name == "snow":
      layer = rng.normal(loc=p[0], scale=p[1], size=(h, w))
      out = snow_np(x, p, layer, rng.uniform(-135, -45))
    elif self.name == "spatter":
      out = spatter_water_np(x, p, rng.normal(loc=p[0], scale=p[1], size=(h, w)))
    elif self.name == "frost":
      tex = frost_texture(frost_dir(self.frost_dir), int(rng.integers(5)), self.res, (h, w))
      top = int(rng.integers(0, max(tex.shape[0] - h, 1)))
      left = int(rng.integers(0, max(tex.shape[1] - w, 1)))
      out = frost_np(x, p, tex[top:top + h, left:left + w])
    else:
      raise ValueError(f"{self.name} is not a host-side corruption")
    out = np.uint8(np.clip(out, 0, 255))
    return jpeg_np(out, self.jpeg_quality) if self.jpeg_quality else out


def make(name: str, severity: int, res: str = "imagenet", *, family: str = "imagenet_c",
         quantize: bool = True, frost_dir: Optional[str] = None,
         jpeg_quality: Optional[int] = None):
  """A DeviceCorruption or HostCorruption for ``name`` at ``severity``.

  Args:
    name, severity, res: as ``tables.table`` (validated here).
    family: the spec name the shift is built under (its ``spec`` and defaults).
    quantize: device outputs on the uint8 grid (as the reference's np.uint8).
    frost_dir: where the frost pictures are (``frost.frost_dir``).
    jpeg_quality: JPEG round trip of every output at this quality (85: as the
      official ImageNet-C files), None for none.
  Returns:
    DeviceCorruption if ``tables.is_device(name, severity, res)``, else HostCorruption.
  """
  table(name, severity, res)   # validates
  _check_jpeg(jpeg_quality, quantize)
  if is_device(name, severity, res):
    return DeviceCorruption(name, int(severity), res, family, jpeg_quality=jpeg_quality,
                            quantize=quantize)
  return HostCorruption(name, int(severity), res, family, jpeg_quality=jpeg_quality,
                        frost_dir=frost_dir)


@SHIFTS.register("imagenet_c")
def imagenet_c(corruption: str, severity: int, quantize: bool = True,
               frost_dir: Optional[str] = None, jpeg_quality: Optional[int] = 85):
  """ImageNet-C corruption with make_imagenet_c.py's parameters (224x224 images),
  JPEG round-tripped at quality 85 as the official files (``jpeg_quality=None``: not)."""
  return make(corruption, severity, "imagenet", family="imagenet_c", quantize=quantize,
              frost_dir=frost_dir, jpeg_quality=jpeg_quality)


@SHIFTS.register("cifar10_c")
def cifar10_c(corruption: str, severity: int, quantize: bool = True,
              frost_dir: Optional[str] = None, jpeg_quality: Optional[int] = None):
  """CIFAR-10-C corruption with make_cifar_c.py's parameters (32x32 images); the
  official CIFAR-10-C arrays are uint8, not JPEG."""
  return make(corruption, severity, "cifar", family="cifar10_c", quantize=quantize,
              frost_dir=frost_dir, jpeg_quality=jpeg_quality)


@SHIFTS.register("corrupt")
def corrupt(name: str, severity: int, res: str = "imagenet", quantize: bool = True,
            frost_dir: Optional[str] = None, jpeg_quality: Optional[int] = None):
  """Any corruption with either parameter set: res='imagenet' | 'cifar' (no JPEG
  round trip unless ``jpeg_quality`` is given)."""
  return make(name, severity, res, family="corrupt", quantize=quantize,
              frost_dir=frost_dir, jpeg_quality=jpeg_quality)
