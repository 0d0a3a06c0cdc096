"""The one image decoder: encoded bytes -> 8-bit RGB, for every PIL mode.

Every reader of user image files (the eval pipeline, the overlap corpus, the
typographic sets, the benchmarks) decodes through :func:`decode`, so a file
means the same pixels everywhere. It depends on PIL and NumPy only, so any
floor may import it.

How each PIL mode becomes RGB:

* ``RGB``, ``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: PIL's
  own ``convert('RGB')`` (``1`` -> 0/255; CMYK by PIL's ``(255-C)(255-K)/255``,
  as torchvision's PIL loader does; YCbCr with the JFIF full-range matrix; LAB
  through PIL's built-in CIELAB D50 transform).
* Alpha (``RGBA``, ``LA``, ``PA``, ``P`` with a transparency entry): the alpha
  channel is dropped and the stored colours kept, as PIL's ``convert('RGB')``
  does for torchvision's ``ImageFolder`` (the reference pipelines), so results
  stay comparable to them. Palette images with transparency go through RGBA
  first (PIL warns otherwise).
* 16-bit integers (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``): ``v >> 8``, the
  high byte. PIL's ``convert('RGB')`` clips them at 255 (a 16-bit photo comes
  out white). ``>> 8`` rather than ``round(v / 257)`` because it is what PIL
  itself does when it opens a 16-bit *RGB* PNG/TIFF (it keeps the high byte)
  and what OpenCV's ``imread`` does: a 16-bit grayscale file then decodes to the
  same values as the same picture stored as 16-bit RGB.
* ``I`` (32-bit signed): PIL opens 16-bit PGM/PPM and some 16-bit files as
  ``I``; values in [0, 65535] are read as 16-bit (``>> 8``). Values outside
  that range have no defined 8-bit scale: the file is refused (listed as bad).
* ``F`` (32-bit float): finite values in [0, 1] are scaled by 255 and rounded;
  anything else (e.g. [0, 255] or raw sensor values) is ambiguous and refused.

Errors are :class:`DecodeError` with a one-line reason that names the file
when a name is given and never holds an object repr (no memory addresses).
"""
from __future__ import annotations

import io
import re
from typing import Optional

import numpy as np
from PIL import Image

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


class DecodeError(ValueError):
  """Bytes that are not a decodable image (the message says which and why)."""


def reason(e: BaseException) -> str:
  """``Type: message`` of a decoder error, with object reprs such as
  ``<_io.BytesIO object at 0x7f..>`` (PIL puts the file object in its
  messages) replaced by 'the data'."""
  text = _ADDRESS.sub("the data", str(e)).strip() or "no detail"
  return f"{type(e).__name__}: {text}"


def _to_rgb(img: Image.Image) -> Image.Image:
  """A loaded PIL image of any mode -> an RGB image (see the module docstring)."""
  mode = img.mode
  if mode == "RGB":
    return img
  if mode in _SIXTEEN_BIT or mode == "I":
    arr = np.asarray(img)
    if mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
      raise ValueError(f"32-bit integer image with values in [{arr.min()}, {arr.max()}]: only "
                       "values in [0, 65535] (16-bit data) have a defined 8-bit scale")
    gray = (arr.astype(np.uint32) >> 8).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
  if mode == "F":
    arr = np.asarray(img, np.float32)
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
      finite = arr[np.isfinite(arr)]
      span = (f"[{finite.min():g}, {finite.max():g}]" if finite.size else "no finite values")
      nonfinite = "" if finite.size == arr.size else " and non-finite values"
      raise ValueError(f"32-bit float image with values in {span}{nonfinite}: only float "
                       "images in [0, 1] have a defined 8-bit scale")
    return Image.fromarray(np.round(arr * 255.0).astype(np.uint8)).convert("RGB")
  if mode == "P" and "transparency" in img.info:
    img = img.convert("RGBA")   # palette with alpha: PIL wants RGBA first
  return img.convert("RGB")


def open_image(image_bytes: bytes, name: Optional[str] = None,
               draft: Optional[int] = None) -> Image.Image:
  """Opens and fully decodes ``image_bytes`` in the file's own mode.

  ``draft`` (opt-in, JPEG only): let libjpeg scale by 1/2, 1/4 or 1/8 inside the
  DCT, keeping both sides >= ``draft`` pixels (PIL ``Image.draft``). Several times
  faster on large photos but not pixel-exact with a full decode + resize.

  Raises:
    DecodeError: empty, unidentifiable, corrupt or truncated data.
  """
  where = f"{name}: " if name else ""
  if not image_bytes:
    raise DecodeError(f"{where}undecodable image: empty file (0 bytes), cannot identify "
                      "an image format")
  img = None
  try:
    img = Image.open(io.BytesIO(image_bytes))
    if draft and img.format == "JPEG":
      img.draft(img.mode, (int(draft), int(draft)))
    img.load()   # force full decode now: truncated files raise here, not later
  except Image.DecompressionBombError as e:
    raise DecodeError(f"{where}undecodable image: too large: {reason(e)}") from e
  except Image.UnidentifiedImageError as e:
    raise DecodeError(f"{where}undecodable image: cannot identify an image format in "
                      f"{len(image_bytes)} bytes (starting {image_bytes[:8]!r})") from e
  except Exception as e:  # noqa: BLE001 -- PIL raises many types for corrupt data
    fmt = f" ({img.format})" if img is not None and img.format else ""
    raise DecodeError(f"{where}undecodable image{fmt}: {reason(e)}") from e
  return img


def decode(image_bytes: bytes, name: Optional[str] = None,
           draft: Optional[int] = None) -> Image.Image:
  """Decodes any PIL-readable image to an 8-bit RGB PIL image.

  Args:
    image_bytes: the encoded file.
    name: the file or member name, put in error messages.
    draft: opt-in reduced-DCT JPEG decoding, see :func:`open_image`; None decodes
      at full size (the default, pixel-exact with the reference preprocessing).

  Returns:
    PIL image of mode 'RGB'.

  Raises:
    DecodeError: corrupt, truncated or empty data, or pixel values with no
      defined 8-bit scale (one line naming ``name`` and the reason).
  """
  img = open_image(image_bytes, name, draft)
  try:
    return _to_rgb(img)
  except Exception as e:  # noqa: BLE001
    where = f"{name}: " if name else ""
    why = e if isinstance(e, ValueError) else reason(e)
    raise DecodeError(f"{where}undecodable image ({img.format}, mode {img.mode}): {why}") from e


def decode_array(image_bytes: bytes, name: Optional[str] = None) -> np.ndarray:
  """:func:`decode` as uint8 (H, W, 3); also refuses images with no pixels."""
  arr = np.asarray(decode(image_bytes, name), dtype=np.uint8)
  if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
    where = f"{name}: " if name else ""
    raise DecodeError(f"{where}undecodable image: empty image of shape {arr.shape}")
  return arr
