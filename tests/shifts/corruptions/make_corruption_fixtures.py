"""Writes tests/shifts/corruptions/corruption_fixtures.npz from the reference corruption code.

Run once (about a minute; the reference glass blur is a slow Python loop):

    .venv/bin/python tests/shifts/corruptions/make_corruption_fixtures.py

The reference is the `imagecorruptions` package (a port of hendrycks/robustness
`ImageNet-C/create_c/make_imagenet_c.py`). Its source is executed unchanged for
the ImageNet parameter set; for the CIFAR set its per-severity tables are
swapped, through the AST, for those of `make_cifar_c.py`, so the same reference
algorithms run with the CIFAR parameters. Two shims make the 2019 package run on
today's stack without changing what it computes: `pkg_resources` (only used to
find the frost pictures) and skimage's removed `multichannel=True`, which meant
"do not blur across the channel axis" (now `channel_axis=-1`); `np.float_` is
`np.float64`.

Where create_c and the package differ, the fixture follows create_c (the code
that made the official ImageNet-C / CIFAR-10-C files):
  * elastic_transform: the package rewrote it; create_c's random affine plus
    elastic field is transcribed below with the same library calls.
  * frost: the package rescales the frost picture by 1.1; create_c crops it
    as is. Frost is checked against a hand computation in the tests instead.
  * snow: the package's clipped_zoom keeps the whole zoomed snow layer, blurs
    it and crops after; create_c's trims it to the image size first. The
    package's snow runs with create_c's clipped_zoom (transcribed below)
    swapped in, which changes the pixels near the borders.
Motion blur and snow used ImageMagick (Wand) in create_c; the package's NumPy
motion blur is the reference here (and what jaxbench implements).

Stored (values are reference outputs in [0, 255] as uint16 of value * 64):
  img224 (224, 224, 3) uint8 and img32 (2, 32, 32, 3) uint8: clean inputs.
  out/<res>/<name>/<severity>: imagenet: (2, 24, 24, 3) patches at rows/cols
    0:24 and 100:124 of the 224 output; cifar: (2, 32, 32, 3) full outputs.
  seed/<res>/<name>/<severity>: (n_images,) np.random.seed used before the call.
  stats/<res>/<name>/<severity>: statistics of the unseeded noises (shot,
    impulse) measured on flat grey images: see `_noise_stats`.
"""
import ast
import os
import sys
import types

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corruption_fixtures.npz")

PATCHES = ((0, 0), (100, 100))
PATCH = 24
SCALE = 64.0

NAMES = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur",
         "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog",
         "brightness", "contrast", "elastic_transform", "pixelate",
         "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter",
         "saturate")
STATS_ONLY = ("shot_noise", "impulse_noise")
NOT_HERE = ("frost",)

# make_cifar_c.py's tables, as source text spliced into the package's functions.
CIFAR_TABLES = {
    "gaussian_noise": "[0.04, 0.06, .08, .09, .10]",
    "shot_noise": "[500, 250, 100, 75, 50]",
    "impulse_noise": "[.01, .02, .03, .05, .07]",
    "speckle_noise": "[.06, .1, .12, .16, .2]",
    "gaussian_blur": "[.4, .6, 0.7, .8, 1]",
    "glass_blur": "[(0.05,1,1), (0.25,1,1), (0.4,1,1), (0.25,1,2), (0.4,1,2)]",
    "defocus_blur": "[(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]",
    "motion_blur": "[(6,1), (6,1.5), (6,2), (8,2), (9,2.5)]",
    "zoom_blur": ("[np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), "
                  "np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.01), "
                  "np.arange(1, 1.26, 0.01)]"),
    "fog": "[(.2,3), (.5,3), (0.75,2.5), (1,2), (1.5,1.75)]",
    "frost": "[(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]",
    "snow": ("[(0.1,0.2,1,0.6,8,3,0.95), (0.1,0.2,1,0.5,10,4,0.9), "
             "(0.15,0.3,1.75,0.55,10,4,0.9), (0.25,0.3,2.25,0.6,12,6,0.85), "
             "(0.3,0.3,1.25,0.65,14,12,0.8)]"),
    "spatter": ("[(0.62,0.1,0.7,0.7,0.5,0), (0.65,0.1,0.8,0.7,0.5,0), "
                "(0.65,0.3,1,0.69,0.5,0), (0.65,0.1,0.7,0.69,0.6,1), "
                "(0.65,0.1,0.5,0.68,0.6,1)]"),
    "contrast": "[.75, .5, .4, .3, 0.15]",
    "brightness": "[.05, .1, .15, .2, .3]",
    "saturate": "[(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]",
    "jpeg_compression": "[80, 65, 58, 50, 40]",
    "pixelate": "[0.95, 0.9, 0.85, 0.75, 0.65]",
}

# create_c elastic tables: (alpha, sigma, affine jitter).
ELASTIC = {
    "imagenet": [(244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                 (244 * 0.05, 244 * 0.01, 244 * 0.02),
                 (244 * 0.07, 244 * 0.01, 244 * 0.02),
                 (244 * 0.12, 244 * 0.01, 244 * 0.02)],
    "cifar": [(32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07),
              (32 * 0.08, 32 * 0.06, 32 * 0.06), (32 * 0.1, 32 * 0.04, 32 * 0.05),
              (32 * 0.1, 32 * 0.03, 32 * 0.03)],
}


def _install_shims():
  """Lets the 2019 reference import on numpy 2 / skimage >= 0.19."""
  if not hasattr(np, "float_"):
    np.float_ = np.float64
  if "pkg_resources" not in sys.modules:
    shim = types.ModuleType("pkg_resources")

    def resource_filename(package, path):
      import importlib.util
      spec = importlib.util.find_spec(package.split(".")[0])
      return os.path.join(os.path.dirname(spec.origin), path)

    shim.resource_filename = resource_filename
    sys.modules["pkg_resources"] = shim
  import skimage.filters
  if getattr(skimage.filters.gaussian, "_shimmed", False):
    return
  original = skimage.filters.gaussian

  def gaussian(image, sigma=1, multichannel=None, **kwargs):
    if multichannel:
      kwargs["channel_axis"] = -1
    return original(image, sigma, **kwargs)

  gaussian._shimmed = True
  skimage.filters.gaussian = gaussian


def load_reference(res: str) -> types.ModuleType:
  """The package's corruptions module, with the CIFAR tables if res == 'cifar'."""
  _install_shims()
  import importlib.util
  spec = importlib.util.find_spec("imagecorruptions")
  path = os.path.join(os.path.dirname(spec.origin), "corruptions.py")
  with open(path) as f:
    tree = ast.parse(f.read())
  if res == "cifar":
    for node in tree.body:
      if isinstance(node, ast.FunctionDef) and node.name in CIFAR_TABLES:
        for stmt in node.body:
          if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
              and stmt.targets[0].id == "c" and isinstance(stmt.value, ast.Subscript)):
            stmt.value.value = ast.parse(CIFAR_TABLES[node.name], mode="eval").body
            break
        else:
          raise RuntimeError(f"no parameter table found in {node.name}")
    ast.fix_missing_locations(tree)
  module = types.ModuleType(f"imagecorruptions_reference_{res}")
  module.__dict__["__name__"] = "imagecorruptions.corruptions"
  exec(compile(tree, path, "exec"), module.__dict__)
  return module


def clipped_zoom_create_c(img, zoom_factor):
  """create_c's clipped_zoom: centre crop, scipy zoom(order=1), trim to size."""
  from scipy.ndimage import zoom as scizoom
  h = img.shape[0]
  ch = int(np.ceil(h / zoom_factor))
  top = (h - ch) // 2
  img = scizoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
  trim_top = (img.shape[0] - h) // 2
  return img[trim_top:trim_top + h, trim_top:trim_top + h]


def snow_create_c(ref, image, severity):
  """The package's snow with create_c's clipped_zoom (crop before the blur)."""
  package_zoom = ref.clipped_zoom
  ref.clipped_zoom = clipped_zoom_create_c
  try:
    return ref.snow(image, severity)
  finally:
    ref.clipped_zoom = package_zoom


def elastic_create_c(image, severity, res):
  """create_c's elastic_transform (random affine, then elastic field)."""
  import cv2
  from scipy.ndimage import map_coordinates
  from skimage.filters import gaussian
  c = ELASTIC[res][severity - 1]
  image = np.array(image, dtype=np.float32) / 255.
  shape = image.shape
  shape_size = shape[:2]
  center_square = np.float32(shape_size) // 2
  square_size = min(shape_size) // 3
  pts1 = np.float32([center_square + square_size,
                     [center_square[0] + square_size, center_square[1] - square_size],
                     center_square - square_size])
  pts2 = pts1 + np.random.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
  m = cv2.getAffineTransform(pts1, pts2)
  image = cv2.warpAffine(image, m, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
  dx = (gaussian(np.random.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect",
                 truncate=3) * c[0]).astype(np.float32)
  dy = (gaussian(np.random.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect",
                 truncate=3) * c[0]).astype(np.float32)
  dx, dy = dx[..., None], dy[..., None]
  x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
  indices = (np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)),
             np.reshape(z, (-1, 1)))
  out = map_coordinates(image, indices, order=1, mode="reflect").reshape(shape)
  return np.clip(out, 0, 1) * 255


def clean_images():
  """One 224x224 image (Resize(256)+CenterCrop(224) as create_c) and two 32x32."""
  import skimage.data
  def crop224(a):
    im = Image.fromarray(a)
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    return np.asarray(im.crop((left, top, left + 224, top + 224)))
  img224 = crop224(skimage.data.astronaut())
  img32 = np.stack([np.asarray(Image.fromarray(crop224(a)).resize((32, 32), Image.BOX))
                    for a in (skimage.data.chelsea(), skimage.data.coffee())])
  return img224, img32


def _noise_stats(ref, name, severity, size):
  """Shot: std of out/255 - 0.5 on grey 0.5 (~ sqrt(0.5/c)); impulse: fraction
  of values flipped to 0 or 255 on grey 128 and the salt share among them."""
  n = 4
  if name == "shot_noise":
    grey = np.full((size, size, 3), 0.5 * 255, np.float64)
    outs = [ref.shot_noise(grey, severity) / 255. for _ in range(n)]
    return np.array([np.std(np.stack(outs) - 0.5), np.mean(np.stack(outs) - 0.5)])
  grey = np.full((size, size, 3), 128, np.uint8)
  outs = np.stack([np.round(ref.impulse_noise(grey, severity)) for _ in range(n)])
  flipped = (outs == 0) | (outs == 255)
  return np.array([flipped.mean(), (outs == 255).sum() / max(flipped.sum(), 1)])


def main():
  img224, img32 = clean_images()
  data = {"img224": img224, "img32": img32}
  for res, images in (("imagenet", img224[None]), ("cifar", img32)):
    ref = load_reference(res)
    for ci, name in enumerate(NAMES):
      if name in NOT_HERE:
        continue
      for severity in range(1, 6):
        key = f"{res}/{name}/{severity}"
        if name in STATS_ONLY:
          data[f"stats/{key}"] = _noise_stats(ref, name, severity, 64 if res == "imagenet" else 32)
          continue
        seeds = np.array([10000 * (res == "cifar") + 100 * ci + 10 * severity + k
                          for k in range(len(images))])
        outs = []
        for seed, img in zip(seeds, images):
          np.random.seed(int(seed))
          if name == "elastic_transform":
            out = elastic_create_c(Image.fromarray(img), severity, res)
          elif name == "snow":
            out = snow_create_c(ref, Image.fromarray(img), severity)
          else:
            out = getattr(ref, name)(Image.fromarray(img), severity)
          out = np.asarray(out, np.float64)
          assert out.shape == img.shape, (key, out.shape)
          if res == "imagenet":
            outs.extend(out[r:r + PATCH, c:c + PATCH] for r, c in PATCHES)
          else:
            outs.append(out)
        data[f"out/{key}"] = np.round(np.clip(np.stack(outs), 0, 255) * SCALE).astype(np.uint16)
        data[f"seed/{key}"] = seeds
        print(key, flush=True)
  np.savez_compressed(OUT, **data)
  print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
  main()
