"""Every PIL mode decodes to the right 8-bit RGB (jaxbench.data.decode).

Each file is written by PIL itself in the mode under test (PNG, TIFF, JPEG) and
the decoded pixels are compared with values computed by hand from the pixels
written: 16-bit by ``v >> 8``, float by ``round(255 v)``, CMYK by
``(255-C)(255-K)/255``, YCbCr by the JFIF matrix, LAB through CIELAB -> sRGB.
"""
import io

import numpy as np
import pytest
from PIL import Image

from jaxbench.data import decode as decode_lib
from jaxbench.data import pipeline
from jaxbench.data.evalset import EvalSet
from jaxbench.models.api import Preprocess
from tests.data.test_pipeline import _Records   # a list of records as a source


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
  buf = io.BytesIO()
  img.save(buf, fmt, **kw)
  return buf.getvalue()


def _gray(values) -> np.ndarray:
  v = np.asarray(values, np.uint8)
  return np.repeat(v[..., None], 3, axis=-1)


_U16 = np.array([[0, 255, 256, 511], [32896, 40000, 65280, 65535]], np.uint16)
_U16_EXPECTED = _gray([[0, 0, 1, 1], [128, 156, 255, 255]])   # v >> 8 by hand
_PALETTE = [10, 20, 30, 200, 100, 50, 0, 255, 0] + [0] * (3 * 253)
_P_INDEX = np.array([[0, 1], [2, 1]], np.uint8)
_P_EXPECTED = np.array([[[10, 20, 30], [200, 100, 50]], [[0, 255, 0], [200, 100, 50]]],
                       np.uint8)
_RGB = np.array([[[255, 0, 0], [0, 128, 255]], [[7, 8, 9], [250, 251, 252]]], np.uint8)


def _palette_image():
  img = Image.frombytes("P", (2, 2), _P_INDEX.tobytes())
  img.putpalette(_PALETTE)
  return img


def _cases():
  """(name, encoded bytes, expected uint8 (H, W, 3), tolerance)."""
  cases = []
  bits = np.array([[0, 1], [1, 0]], bool)
  for fmt in ("PNG", "TIFF"):
    cases.append((f"1-{fmt}", _save(Image.fromarray(bits).convert("1"), fmt),
                  _gray([[0, 255], [255, 0]]), 0))
  gray = np.array([[0, 17], [128, 255]], np.uint8)
  for fmt in ("PNG", "TIFF"):
    cases.append((f"L-{fmt}", _save(Image.fromarray(gray, "L"), fmt), _gray(gray), 0))
  for fmt in ("PNG", "TIFF"):
    cases.append((f"P-{fmt}", _save(_palette_image(), fmt), _P_EXPECTED, 0))
  # Palette with a transparent entry: alpha dropped, stored colours kept.
  cases.append(("P-transparency-PNG", _save(_palette_image(), "PNG", transparency=1),
                _P_EXPECTED, 0))
  pa = _palette_image().convert("PA")
  cases.append(("PA-TIFF", _save(pa, "TIFF"), _P_EXPECTED, 0))
  la = Image.merge("LA", [Image.fromarray(gray, "L"),
                          Image.fromarray(np.array([[0, 255], [9, 100]], np.uint8), "L")])
  for fmt in ("PNG", "TIFF"):
    cases.append((f"LA-{fmt}", _save(la, fmt), _gray(gray), 0))
  rgba = np.concatenate([_RGB, np.array([[[0], [50]], [[255], [1]]], np.uint8)], -1)
  for fmt in ("PNG", "TIFF"):
    cases.append((f"RGB-{fmt}", _save(Image.fromarray(_RGB, "RGB"), fmt), _RGB, 0))
    cases.append((f"RGBA-{fmt}", _save(Image.fromarray(rgba, "RGBA"), fmt), _RGB, 0))
  cases.append(("RGBX-TIFF", _save(Image.fromarray(_RGB, "RGB").convert("RGBX"), "TIFF"),
                _RGB, 0))
  cmyk = np.array([[[10, 20, 30, 40], [0, 0, 0, 0]], [[255, 0, 128, 0], [0, 0, 0, 255]]],
                  np.uint8)
  cmyk_expected = np.round((255.0 - cmyk[..., :3]) * (255.0 - cmyk[..., 3:]) / 255.0)
  cases.append(("CMYK-TIFF", _save(Image.fromarray(cmyk, "CMYK"), "TIFF"),
                cmyk_expected.astype(np.uint8), 1))
  ycc = np.array([[[100, 90, 200], [128, 128, 128]], [[255, 128, 128], [50, 200, 60]]],
                 np.float64)
  y, cb, cr = ycc[..., 0], ycc[..., 1] - 128, ycc[..., 2] - 128   # JFIF full range
  ycc_expected = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr,
                           y + 1.772 * cb], -1)
  cases.append(("YCbCr-TIFF", _save(Image.fromarray(ycc.astype(np.uint8), "YCbCr"), "TIFF"),
                np.clip(np.round(ycc_expected), 0, 255).astype(np.uint8), 1))
  # LAB (neutral greys, so the white point does not matter): a*, b* are signed
  # bytes as in TIFF's CIELab (0 = neutral); L* = 100 L / 255, Y from CIELAB's
  # inverse, then the sRGB transfer curve.
  lab_l = np.array([[0, 64], [128, 200]], np.float64)
  lstar = lab_l * 100 / 255
  fy = (lstar + 16) / 116
  yy = np.where(fy > 6 / 29, fy ** 3, 3 * (6 / 29) ** 2 * (fy - 4 / 29))
  srgb = np.where(yy <= 0.0031308, 12.92 * yy, 1.055 * yy ** (1 / 2.4) - 0.055)
  lab = np.stack([lab_l, np.zeros_like(lab_l), np.zeros_like(lab_l)], -1)
  cases.append(("LAB-TIFF", _save(Image.fromarray(lab.astype(np.uint8), "LAB"), "TIFF"),
                _gray(np.round(srgb * 255)), 2))
  # 16 bit: the reported bug (I;16 PNG decoded as white).
  size = _U16.shape[::-1]
  sixteen = {"I;16": Image.fromarray(_U16),
             "I;16B": Image.frombytes("I;16B", size, _U16.astype(">u2").tobytes()),
             "I;16L": Image.frombytes("I;16L", size, _U16.astype("<u2").tobytes())}
  for mode, fmts in (("I;16", ("PNG", "TIFF")), ("I;16B", ("PNG", "TIFF")),
                     ("I;16L", ("TIFF",))):
    for fmt in fmts:
      cases.append((f"{mode}-{fmt}", _save(sixteen[mode], fmt), _U16_EXPECTED, 0))
  cases.append(("I-TIFF", _save(Image.fromarray(_U16.astype(np.int32), "I"), "TIFF"),
                _U16_EXPECTED, 0))
  cases.append(("I-PPM16", _save(Image.fromarray(_U16), "PPM"), _U16_EXPECTED, 0))
  floats = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
  cases.append(("F-TIFF", _save(Image.fromarray(floats, "F"), "TIFF"),
                _gray([[0, 64], [128, 255]]), 0))   # round(255 v): 63.75 -> 64, 127.5 -> 128
  # JPEG is lossy: flat colours, a few levels of tolerance.
  flat = np.full((16, 16), 77, np.uint8)
  cases.append(("L-JPEG", _save(Image.fromarray(flat, "L"), "JPEG"), _gray(flat), 1))
  cases.append(("1-JPEG", _save(Image.fromarray(flat > 50).convert("1"), "JPEG"),
                _gray(np.full((16, 16), 255)), 1))
  rgb_flat = np.zeros((16, 16, 3), np.uint8) + np.array([200, 40, 90], np.uint8)
  cases.append(("RGB-JPEG", _save(Image.fromarray(rgb_flat), "JPEG", quality=95), rgb_flat, 3))
  cmyk_flat = np.zeros((16, 16, 4), np.uint8) + np.array([10, 20, 30, 40], np.uint8)
  cases.append(("CMYK-JPEG", _save(Image.fromarray(cmyk_flat, "CMYK"), "JPEG", quality=95),
                np.zeros((16, 16, 3), np.uint8) + np.array([207, 198, 190], np.uint8), 3))
  return cases


@pytest.mark.parametrize("name,data,expected,tol", _cases(), ids=[c[0] for c in _cases()])
def test_every_mode_decodes_to_hand_computed_rgb(name, data, expected, tol):
  # The file really is in the mode under test (PIL reads some back as another).
  opened = {"RGBX-TIFF": "RGB", "I;16B-PNG": "I;16", "I;16L-TIFF": "I;16", "1-JPEG": "L",
            "I-PPM16": "I"}.get(name, name.split("-")[0])
  assert Image.open(io.BytesIO(data)).mode == opened, name
  img = decode_lib.decode(data, name)
  assert img.mode == "RGB", name
  got = np.asarray(img).astype(int)
  assert got.shape == expected.shape, name
  assert np.abs(got - expected.astype(int)).max() <= tol, (name, got, expected)


def test_cmyk_jpeg_expected_is_the_hand_formula():
  # The CMYK-JPEG constant above is the CMYK formula for (10, 20, 30, 40).
  c, k = np.array([10, 20, 30]), 40
  assert np.round((255 - c) * (255 - k) / 255).tolist() == [207, 198, 190]


def test_hsv_in_memory():
  # No PNG/TIFF/JPEG holds HSV; a decoded HSV image still converts: hue 0 is red,
  # hue 85/255 (120 degrees) green.
  hsv = Image.frombytes("HSV", (2, 1), bytes([0, 255, 255, 85, 255, 255]))
  np.testing.assert_array_equal(np.asarray(decode_lib._to_rgb(hsv)),
                                [[[255, 0, 0], [0, 255, 0]]])


@pytest.mark.parametrize("values,mode,match", [
    (np.array([[0, 70000]], np.int32), "I", r"values in \[0, 70000\].*\[0, 65535\]"),
    (np.array([[0.0, 255.0]], np.float32), "F", r"values in \[0, 255\].*\[0, 1\]"),
    (np.array([[0.0, np.nan]], np.float32), "F", r"non-finite"),
])
def test_out_of_range_images_are_refused_with_the_reason(values, mode, match):
  data = _save(Image.fromarray(values, mode), "TIFF")
  with pytest.raises(decode_lib.DecodeError, match=match) as e:
    decode_lib.decode(data, "cls/odd.tif")
  assert str(e.value).startswith("cls/odd.tif: ") and "\n" not in str(e.value)


def test_sixteen_bit_png_through_the_pipeline_is_not_white():
  # The reported bug: a mid-grey 16-bit PNG came out 99.9% white and counted as valid.
  arr = np.full((8, 8), 30000, np.uint16)
  data = _save(Image.fromarray(arr), "PNG")
  assert Image.open(io.BytesIO(data)).mode == "I;16"
  np.testing.assert_array_equal(np.asarray(pipeline.decode(data)), _gray(arr >> 8))
  es = EvalSet("x", _Records([{"id": "a.png", "label": 0, "image_bytes": data}]),
               num_classes=2)
  ex = pipeline.LoadExample(es, Preprocess(size=8, resize=8)).map(0)
  assert bool(ex["mask"]) and (ex["image"] == 30000 >> 8).all()


def test_bad_file_reason_has_no_memory_address():
  records = [{"id": "cls/junk.JPEG", "label": 0, "image_bytes": b"not an image at all"},
             {"id": "cls/empty.JPEG", "label": 0, "image_bytes": b""}]
  es = EvalSet("x", _Records(records), num_classes=2)
  for i, rec in enumerate(records):
    why = pipeline.describe_error(es, i)
    assert "0x" not in why and "object at" not in why, why
    assert rec["id"] in why and "cannot identify" in why, why
