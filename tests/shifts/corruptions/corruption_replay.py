"""Reference fixtures of the corruption tests and the replay of the reference's random draws.

Fixtures (corruption_fixtures.npz, next to this file) hold reference outputs made by
make_corruption_fixtures.py, which runs the reference code with np.random.seed(seed)
before each call. For random corruptions the tests replay the same NumPy draws
(legacy RandomState streams are stable across NumPy versions) and feed them to our
deterministic `apply`, so every corruption is compared pixel for pixel: mean absolute
difference <= 1/255. The noises the reference draws unseeded (impulse) or that are
trivially `draw / c` (shot) are compared by their statistics instead, as are our own
samplers.
"""
import functools
import os
import sys

import jax
import numpy as np

from jaxbench.shifts import corruptions as C
from jaxbench.shifts.corruptions import image_ops

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = np.load(os.path.join(HERE, "corruption_fixtures.npz"))
PATCHES = ((0, 0), (100, 100))
PATCH = 24


def images(res):
  """The fixture's clean inputs: uint8 (1, 224, 224, 3) or (2, 32, 32, 3)."""
  return FIX["img224"][None] if res == "imagenet" else FIX["img32"]


def reference(res, name, severity):
  """The reference outputs in [0, 255], in the layout of ``crop``."""
  return FIX[f"out/{res}/{name}/{severity}"].astype(np.float64) / 64.0


def seeds(res, name, severity):
  """The np.random.seed used before the reference call, per image."""
  return [int(s) for s in FIX[f"seed/{res}/{name}/{severity}"]]


def crop(res, out):
  """Our (N, H, W, 3) outputs in the fixture's layout."""
  if res == "cifar":
    return out
  return np.stack([o[r:r + PATCH, c:c + PATCH] for o in out for r, c in PATCHES])


def replay(name, severity, res, shape, seed):
  """The random fields the reference drew after np.random.seed(seed)."""
  h, w = shape[:2]
  np.random.seed(seed)
  p = C.table(name, severity, res)
  if name in ("gaussian_noise", "speckle_noise"):
    return {"z": np.random.standard_normal(shape).astype(np.float32)}
  if name == "glass_blur":
    n = image_ops.glass_positions(h, w, p[1], p[2])
    return {"offsets": np.random.randint(-p[1], p[1], size=(n, 2)).astype(np.int8)}
  if name == "fog":
    mapsize = 1 << (max(h, w) - 1).bit_length()
    return {"u": [np.random.random_sample((1 << k, 1 << k)).astype(np.float32)
                  for k in range(int(np.log2(mapsize))) for _ in range(3)]}
  if name == "spatter":
    return {"z": np.random.standard_normal((h, w)).astype(np.float32)}
  if name == "elastic_transform":
    affine = np.random.uniform(-p[2], p[2], size=(3, 2)).astype(np.float32)
    return {"affine": affine,
            "dx": np.random.uniform(-1, 1, size=(h, w)).astype(np.float32),
            "dy": np.random.uniform(-1, 1, size=(h, w)).astype(np.float32)}
  return {}


@functools.lru_cache(maxsize=None)
def _apply_fn(name, static):
  kern = C.kernel(name)

  def f(x, fields, arrays):
    return jax.vmap(lambda xi, fi: kern.apply(xi, fi, arrays, static))(x, fields)

  return jax.jit(f)


def device_outputs(name, severity, res):
  """Our device kernel's outputs in [0, 255] on the fixture's images, from the
  reference's replayed draws."""
  x_uint8 = images(res)
  arrays, static = C.device_params(name, severity, res, x_uint8.shape[1:3])
  fields = [replay(name, severity, res, x_uint8.shape[1:], s)
            for s in seeds(res, name, severity)]
  fields = jax.tree.map(lambda *a: np.stack(a), *fields)
  x = x_uint8.astype(np.float32) / 255
  return np.asarray(_apply_fn(name, static)(x, fields, arrays)) * 255


@functools.lru_cache(maxsize=None)
def _run_fn(name, static):
  """sample + apply with the severity's arrays as arguments: one compile per shape."""
  kern = C.kernel(name)

  def f(keys, x, arrays):
    return jax.vmap(lambda k, xi: kern.apply(xi, kern.sample(k, xi, arrays, static),
                                             arrays, static))(keys, x)

  return jax.jit(f)


def run(name, severity, res, keys, x):
  """Our device kernel, sampling included, on float32 (N, H, W, 3) ``x``."""
  arrays, static = C.device_params(name, severity, res, x.shape[1:3])
  return np.asarray(_run_fn(name, static)(keys, x, arrays))


@functools.lru_cache(maxsize=None)
def package_reference(res):
  """imagecorruptions' module (CIFAR tables for 'cifar'), loaded with the fixture
  maker's shims; its pkg_resources stand-in is removed again afterwards."""
  import make_corruption_fixtures as M
  had = "pkg_resources" in sys.modules
  try:
    return M.load_reference(res)
  finally:
    if not had:
      sys.modules.pop("pkg_resources", None)
