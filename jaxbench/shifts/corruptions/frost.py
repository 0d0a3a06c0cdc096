"""The frost pictures of create_c: where they are looked for, how they are loaded and scaled.

The frost corruption blends the image with a crop of one of five photographs
of frost (``frost1.png`` .. ``frost5.jpg``; create_c draws ``randint(5)`` so
``frost6.jpg`` is never used). They are data shipped with the reference code,
not with jaxbench: ``frost_dir`` finds them (an explicit directory,
``$JAXBENCH_FROST_DIR``, ``~/.cache/jaxbench/frost``, or the ``imagecorruptions``
package) or says where to get them.
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import numpy as np

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg",
               "frost6.jpg")
# create_c draws np.random.randint(5): frost6.jpg is never used.
FROST_USED = FROST_FILES[:5]
FROST_ENV = "JAXBENCH_FROST_DIR"


def frost_dir(user_dir: Optional[str] = None) -> str:
  """The directory holding frost1.png .. frost5.jpg.

  Args:
    user_dir: a directory to use; looked in first, then ``$JAXBENCH_FROST_DIR``,
      ``~/.cache/jaxbench/frost`` and the ``imagecorruptions`` package's copy.
  Returns:
    The first of those directories that holds all five pictures.
  Raises:
    FileNotFoundError: naming where it looked and where to get the pictures.
  """
  candidates = [user_dir, os.environ.get(FROST_ENV),
                os.path.join(os.path.expanduser("~"), ".cache", "jaxbench", "frost")]
  try:   # the imagecorruptions package ships the same pictures
    import importlib.util
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is not None and spec.origin:
      candidates.append(os.path.join(os.path.dirname(spec.origin), "frost"))
  except (ImportError, ValueError):
    pass
  looked = []
  for d in candidates:
    if not d:
      continue
    d = os.path.expanduser(d)
    looked.append(d)
    if all(os.path.isfile(os.path.join(d, f)) for f in FROST_USED):
      return d
  if user_dir:
    missing = [f for f in FROST_USED if not os.path.isfile(os.path.join(user_dir, f))]
    detail = f"frost_dir={user_dir!r} lacks {', '.join(missing)}; "
  else:
    detail = ""
  raise FileNotFoundError(
      f"the frost corruption needs the frost pictures {', '.join(FROST_USED)} "
      f"(data shipped with the reference code); {detail}looked in: "
      f"{', '.join(looked) or '(nowhere)'}. Get them from hendrycks/robustness "
      "(https://github.com/hendrycks/robustness, ImageNet-C/create_c/frost*.png|jpg) or "
      "from the `imagecorruptions` PyPI package (imagecorruptions/frost/), then pass "
      f"frost_dir=... or set ${FROST_ENV}, or copy them to ~/.cache/jaxbench/frost.")


@functools.lru_cache(maxsize=16)
def _frost_texture(path: str, scale: float) -> np.ndarray:
  """The picture at ``path`` as RGB uint8 (h, w, 3), resized by ``scale`` as create_c."""
  import cv2
  img = cv2.imread(path)
  if img is None:
    raise OSError(f"frost picture {path} could not be read as an image")
  if scale != 1.0:
    img = cv2.resize(img, (0, 0), fx=scale, fy=scale)
  return np.ascontiguousarray(img[..., ::-1])   # BGR -> RGB


def frost_texture(directory: str, index: int, res: str, hw: tuple[int, int]) -> np.ndarray:
  """Frost picture ``index`` (0..4) as RGB uint8, scaled as create_c does for ``res``.

  CIFAR: cv2.resize by 0.2 (make_cifar_c). ImageNet: used as is; a picture
  smaller than the image (not the case for the shipped pictures at 224) is
  enlarged to cover it.

  Args:
    directory: from ``frost_dir``.
    index: 0..4 (create_c's randint(5)).
    res: 'imagenet' or 'cifar'.
    hw: (H, W) of the image the frost covers.
  Returns:
    uint8 (h, w, 3) RGB with h > H and w > W (cached: do not modify).
  """
  path = os.path.join(directory, FROST_FILES[index])
  tex = _frost_texture(path, 0.2 if res == "cifar" else 1.0)
  h, w = hw
  if tex.shape[0] <= h or tex.shape[1] <= w:
    factor = 1.1 * max(h / tex.shape[0], w / tex.shape[1])
    tex = _frost_texture_scaled(path, 0.2 if res == "cifar" else 1.0, factor)
  return tex


@functools.lru_cache(maxsize=16)
def _frost_texture_scaled(path: str, scale: float, factor: float) -> np.ndarray:
  """``_frost_texture`` enlarged by ``factor`` (bicubic) to cover a larger image."""
  import cv2
  tex = _frost_texture(path, scale)
  size = (int(np.ceil(tex.shape[1] * factor)), int(np.ceil(tex.shape[0] * factor)))
  return cv2.resize(tex, size, interpolation=cv2.INTER_CUBIC)

