"""Decoding sources as cv2.imread did: EXIF orientation and OpenCV 4's CMYK."""
import io

import numpy as np

from jaxbench.typographic import codec


def test_decode_applies_exif_orientation():
  from PIL import Image, ImageOps
  rng = np.random.default_rng(0)
  rgb = (rng.random((30, 50, 3)) * 255).astype(np.uint8)
  im = Image.fromarray(rgb)
  exif = im.getexif()
  exif[0x0112] = 6                                # rotate 90 CW on display
  buf = io.BytesIO()
  im.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
  out, mode = codec.decode_rgb(buf.getvalue())
  want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
  assert mode == "RGB" and out.shape == (50, 30, 3) and np.array_equal(out, want)


def test_decode_converts_cmyk_as_opencv4():
  from PIL import Image
  rng = np.random.default_rng(1)
  # CMYK as OpenCV 4's icvCvt_CMYK2BGR_8u_C4C3R on libjpeg's (Adobe-inverted) samples.
  cmyk = (rng.random((20, 24, 4)) * 255).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(cmyk, mode="CMYK").save(buf, format="JPEG", quality=95)
  out, mode = codec.decode_rgb(buf.getvalue())
  pil = Image.open(io.BytesIO(buf.getvalue()))
  raw = 255 - np.asarray(pil).astype(np.int64)   # PIL un-inverts Adobe CMYK; libjpeg does not
  k = raw[..., 3]
  want = np.stack([k - (((255 - raw[..., i]) * k) >> 8) for i in range(3)], -1)
  assert mode == "CMYK" and np.array_equal(out.astype(np.int64), want)
  assert not np.array_equal(out, np.asarray(pil.convert("RGB")))   # PIL's differs
