"""Image bytes in and out, as RoZ's scripts read and wrote them.

:func:`decode_rgb` reads a source file as ``cv2.imread`` did (EXIF orientation,
OpenCV 4's CMYK conversion); :func:`encode` writes a set's images as
``cv2.imwrite`` (ImageNet-T JPEG at quality 95) or ``plt.savefig``
(CIFAR-10-T figures) did.
"""
from __future__ import annotations

import io

import cv2
import numpy as np

from jaxbench.data import decode as decode_lib
from jaxbench.typographic.errors import TypographicError


def encode(image: np.ndarray, fmt: str, quality: int = 95) -> bytes:
  """Encodes an RGB uint8 image.

  Args:
    image: uint8 (H, W, 3) RGB.
    fmt: 'jpeg' (OpenCV, as RoZ's cv2.imwrite; quality 95 is its default),
      'png' (lossless) or 'jpeg_matplotlib' (PIL with 150 dpi metadata: the bytes
      ``plt.savefig(..., dpi=150)`` writes for RoZ's CIFAR-10-T figures; RoZ's
      matplotlib saved at ``savefig.jpeg_quality`` 95, today's at PIL's 75).
    quality: JPEG quality for 'jpeg' and 'jpeg_matplotlib' (default 95, RoZ's).

  Returns:
    the encoded file bytes.
  """
  if fmt == "jpeg_matplotlib":
    from PIL import Image  # pylint: disable=g-import-not-at-top
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="jpeg", dpi=(150, 150), quality=int(quality))
    return buf.getvalue()
  bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
  if fmt == "jpeg":
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  elif fmt == "png":
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
  else:
    raise TypographicError(f"image format {fmt!r}, expected 'jpeg', 'png' or 'jpeg_matplotlib'")
  if not ok:
    raise TypographicError(f"OpenCV could not encode a {image.shape} image as {fmt}")
  return buf.tobytes()


def decode_rgb(data: bytes) -> tuple[np.ndarray, str]:
  """Decodes image bytes to RGB as RoZ's ``cv2.imread`` did, and reports the mode.

  JPEGs (all of ImageNet; RGB, grayscale and CMYK) are decoded with OpenCV's
  ``IMREAD_COLOR``, as ``cv2.imread``: the EXIF orientation is applied, grayscale is
  replicated, and CMYK is converted as OpenCV 4's ``icvCvt_CMYK2BGR_8u_C4C3R`` does
  (``c' = k - ((255 - c) k >> 8)`` on libjpeg's Adobe-inverted values, which differs
  from PIL's ``convert('RGB')`` by +-1 at most pixels; tested against that formula).
  Other files and modes (PNG, palette, alpha, 16-bit, ...) go through the pipeline's
  decoder (:func:`jaxbench.data.decode.decode`).

  Returns:
    (uint8 (H, W, 3) RGB, original PIL mode such as 'RGB', 'L', 'CMYK', 'P').
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(io.BytesIO(data)) as im:
    mode, fmt = im.mode, im.format
    if fmt != "JPEG" or mode not in ("RGB", "L", "CMYK"):
      return np.asarray(decode_lib.decode(data)), mode
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    raise TypographicError("OpenCV could not decode a JPEG that PIL opened")
  return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mode
