"""PIL-exact resize + crop on the device (jaxbench.data.resample) against PIL itself.

The reference is the installed Pillow through ``pipeline.resize_crop`` (Image.resize +
center crop); every comparison is bit-exact. The wrong variants at the end show that
the images used here do catch a wrong rounding, a missing clip or a wrong pass order.
"""
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from jaxbench.data import pipeline, resample
from jaxbench.data.evalset import EvalSet
from jaxbench.models.api import Preprocess
from tests.data.test_pipeline import _Records   # a list of records as a source

CANVAS = 64


def _image(rng, w, h, kind):
  """uint8 (h, w, 3): random noise, hard 0/255 edges (saturation: clipping matters) or
  a smooth ramp."""
  if kind == "noise":
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  if kind == "edges":
    return np.where(rng.random((h, w, 3)) < 0.5, 0, 255).astype(np.uint8)
  yy, xx = np.mgrid[0:h, 0:w]
  ramp = (xx * 7 + yy * 13) % 256
  return np.stack([ramp, 255 - ramp, (ramp * 3) % 256], -1).astype(np.uint8)


def _sizes(rng, n, limit=CANVAS):
  """Both orientations, 1-pixel sides, the canvas side itself, random in between."""
  fixed = [(1, 1), (1, limit), (limit, 1), (limit, limit), (2, 37), (37, 2), (13, 13)]
  return fixed + [(int(rng.integers(1, limit + 1)), int(rng.integers(1, limit + 1)))
                  for _ in range(n - len(fixed))]


def _device(canvases, tables):
  batch = {"image": np.stack(canvases)}
  for k in resample.TABLE_KEYS:
    batch[k] = np.stack([t[k] for t in tables])
  return np.asarray(resample.finish(batch)["image"])


# (size, resize) per case: downscaling (resize < sides), upscaling (resize > sides),
# odd sizes, resize == size.
_PPS = [(8, 9), (17, 17), (24, 40), (5, 7)]


@pytest.mark.parametrize("crop", ["center", "squash"])
@pytest.mark.parametrize("interpolation", resample.FILTERS)
def test_device_resize_equals_pil(interpolation, crop):
  rng = np.random.default_rng(zlib.crc32(f"{interpolation}/{crop}".encode()))
  size, resize = _PPS[resample.FILTERS.index(interpolation) % len(_PPS)]
  pp = Preprocess(size=size, resize=resize, interpolation=interpolation, crop=crop)
  taps = resample.max_taps(CANVAS, pp)
  canvases, tables, refs, fallbacks = [], [], [], 0
  for i, (w, h) in enumerate(_sizes(rng, 24)):
    arr = _image(rng, w, h, ("noise", "edges", "ramp")[i % 3])
    ref = pipeline.resize_crop(Image.fromarray(arr), pp)
    table = resample.image_table(w, h, pp, CANVAS, taps)
    if table is None:   # padded by the crop: the host's pixels pass through
      fallbacks += 1
      canvases.append(resample.on_canvas(ref, CANVAS))
      tables.append(resample.identity_table(size, taps))
    else:
      canvases.append(resample.on_canvas(arr, CANVAS))
      tables.append(table)
    refs.append(ref)
  assert fallbacks < len(refs) // 2   # most images really go through the device passes
  got = _device(canvases, tables)
  for i, ref in enumerate(refs):
    np.testing.assert_array_equal(got[i], ref, err_msg=f"image {i}")


def test_host_reference_equals_pil_over_many_sizes():
  # The NumPy form of the same tables over many more sizes and every filter (no
  # compilation per shape), including Pillow 13's vertical-first cases.
  rng = np.random.default_rng(7)
  for i in range(240):
    interpolation = resample.FILTERS[i % len(resample.FILTERS)]
    size = int(rng.integers(1, 30))
    pp = Preprocess(size=size, resize=size + int(rng.integers(0, 12)),
                    interpolation=interpolation, crop=("center", "squash")[i % 2])
    w, h = int(rng.integers(1, 120)), int(rng.integers(1, 120))
    arr = _image(rng, w, h, ("noise", "edges", "ramp")[i % 3])
    table = resample.image_table(w, h, pp, 128, resample.max_taps(128, pp))
    if table is None:
      continue
    np.testing.assert_array_equal(resample.host_apply(resample.on_canvas(arr, 128), table),
                                  pipeline.resize_crop(Image.fromarray(arr), pp),
                                  err_msg=f"{interpolation} {w}x{h} {pp}")


def test_imagenet_shape_bicubic_224():
  # The benchmark's case: 500x375 (and 375x500) -> 298x224 bicubic -> 224 crop.
  rng = np.random.default_rng(3)
  pp = Preprocess(size=224, resize=224, interpolation="bicubic")
  taps = resample.max_taps(512, pp)
  arrs = [_image(rng, 500, 375, "noise"), _image(rng, 375, 500, "edges")]
  tables = [resample.image_table(a.shape[1], a.shape[0], pp, 512, taps) for a in arrs]
  got = _device([resample.on_canvas(a, 512) for a in arrs], tables)
  for g, a in zip(got, arrs):
    np.testing.assert_array_equal(g, pipeline.resize_crop(Image.fromarray(a), pp))


def test_tables_refuse_what_the_device_cannot_reproduce():
  pp = Preprocess(size=32, resize=32, interpolation="bicubic")
  taps = resample.max_taps(64, pp)
  assert resample.image_table(65, 40, pp, 64, taps) is None    # larger than the canvas
  assert resample.image_table(40, 65, pp, 64, taps) is None
  assert resample.image_table(64, 40, pp, 64, taps) is not None
  small = Preprocess(size=32, resize=20, interpolation="bicubic")   # crop pads
  assert resample.image_table(40, 40, small, 64, resample.max_taps(64, small)) is None


def test_kept_axis_is_an_identity_table():
  # Pillow skips the pass of an axis whose size does not change.
  starts, coeffs = resample.axis_table(37, 37, "lanczos")
  np.testing.assert_array_equal(starts, np.arange(37))
  np.testing.assert_array_equal(coeffs, np.full((37, 1), 1 << 22))


# --- wrong variants: the images above catch each of these ---------------------------------

def _edges_case():
  rng = np.random.default_rng(11)
  pp = Preprocess(size=20, resize=23, interpolation="bicubic")
  arr = _image(rng, 9, 14, "edges")   # upscaled: bicubic overshoots past 0 and 255
  table = resample.image_table(9, 14, pp, CANVAS, resample.max_taps(CANVAS, pp))
  return arr, pp, table


def _float_accumulation(arr, table):
  """Coefficients as floats, sums in float64, rounded once per pass."""
  a = arr.astype(np.float64)
  for axis, (s, k) in ((1, ("rs_x0", "rs_kx")), (0, ("rs_y0", "rs_ky"))):
    starts, coeffs = table[s], table[k] / float(1 << 22)
    a = np.moveaxis(a, axis, 0)
    idx = np.clip(starts[:, None] + np.arange(coeffs.shape[1]), 0, a.shape[0] - 1)
    a = np.moveaxis(np.clip(np.einsum("ok...,ok->o...", a[idx], coeffs), 0, 255), 0, axis)
  return np.round(a).astype(np.uint8)


def _no_clip_between_passes(arr, table):
  a = arr.astype(np.int64)
  x = np.clip(table["rs_x0"][:, None] + np.arange(table["rs_kx"].shape[1]), 0, a.shape[1] - 1)
  mid = (resample.HALF + np.einsum("hokc,ok->hoc", a[:, x], table["rs_kx"])) >> 22  # no clip
  y = np.clip(table["rs_y0"][:, None] + np.arange(table["rs_ky"].shape[1]), 0, a.shape[0] - 1)
  out = (resample.HALF + np.einsum("pkoc,pk->poc", mid[y], table["rs_ky"])) >> 22
  return np.clip(out, 0, 255).astype(np.uint8)


def test_float_accumulation_would_fail():
  arr, pp, table = _edges_case()
  ref = pipeline.resize_crop(Image.fromarray(arr), pp)
  np.testing.assert_array_equal(resample.host_apply(arr, table), ref)
  assert not np.array_equal(_float_accumulation(arr, table), ref)


def test_no_clip_between_passes_would_fail():
  arr, pp, table = _edges_case()
  ref = pipeline.resize_crop(Image.fromarray(arr), pp)
  assert not np.array_equal(_no_clip_between_passes(arr, table), ref)


def test_pass_order_matters_and_follows_the_installed_pillow():
  # A tall image shrunk mostly in height: Pillow >= 13 goes vertical first.
  rng = np.random.default_rng(5)
  pp = Preprocess(size=20, resize=20, interpolation="bicubic", crop="squash")
  arr = _image(rng, 23, 60, "noise")
  table = resample.image_table(23, 60, pp, CANVAS, resample.max_taps(CANVAS, pp))
  ref = pipeline.resize_crop(Image.fromarray(arr), pp)
  flipped = {**table, "rs_vf": np.bool_(not table["rs_vf"])}
  np.testing.assert_array_equal(resample.host_apply(arr, table), ref)
  assert not np.array_equal(resample.host_apply(arr, flipped), ref)
  assert bool(table["rs_vf"]) == (resample.pillow_order() == "pillow13")


# --- decode-only LoadExample -----------------------------------------------------------------

def _jpeg(arr, fmt="JPEG"):
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, fmt)
  return buf.getvalue()


def test_decode_only_batches_finish_to_the_host_batches():
  rng = np.random.default_rng(2)
  records = [{"id": f"{i}.jpg", "label": i % 3,
              "image_bytes": _jpeg(_image(rng, w, h, "ramp"))}
             for i, (w, h) in enumerate([(50, 40), (40, 50), (90, 30), (33, 33), (20, 60)])]
  records.append({"id": "gray.png", "label": 1,
                  "image_bytes": _jpeg(rng.integers(0, 256, (45, 38), dtype=np.uint8), "PNG")})
  records.append({"id": "broken.jpg", "label": 2, "image_bytes": b"\xff\xd8 broken"})
  es = EvalSet("t", _Records(records), 3)
  pp = Preprocess(size=32, resize=36, interpolation="bilinear")
  the_plan = pipeline.plan(np.arange(len(records)), 4)   # one padded slot
  host = list(pipeline.batches(es, pp, the_plan, num_threads=2))
  dev = list(pipeline.batches(es, pp, the_plan, num_threads=2, canvas=64))
  assert dev[0]["image"].shape == (4, 64, 64, 3)
  assert set(resample.TABLE_KEYS) <= set(dev[0])
  for h, d in zip(host, dev):
    d = {k: np.asarray(v) for k, v in resample.finish(d).items()}
    assert sorted(h) == sorted(d)
    for k in h:
      np.testing.assert_array_equal(h[k], d[k], err_msg=k)
  assert host[1]["bad"].tolist() == [False, False, True, False]   # the broken file


@pytest.mark.parametrize("value, message", [
    ("64", "config.device_resize='64': use 0"), (-1, "config.device_resize=-1: use 0"),
    (True, "config.device_resize=True"), (2.5, "config.device_resize=2.5"),
    (16, "config.device_resize=16: the canvas is smaller than the crop size 32")])
def test_bad_canvas_is_refused_naming_the_key(value, message):
  pp = Preprocess(size=32, resize=32)
  with pytest.raises(ValueError) as e:
    resample.check_canvas(value, pp)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_decode_only_with_jpeg_draft_equals_the_draft_host_path():
  # config.jpeg_draft decodes at reduced DCT scale first; the device resizes that image.
  from tests.data.test_jpeg_draft import _photo
  es = EvalSet("t", _Records([{"id": "a.jpg", "label": 0, "image_bytes": _photo()}]), 1)
  pp = Preprocess(size=32, resize=32)
  host = pipeline.LoadExample(es, pp, draft=32).map(0)
  dev = pipeline.LoadExample(es, pp, draft=32, canvas=64).map(0)
  assert dev["image"].shape == (64, 64, 3) and int(dev["rs_kx"][0, 0]) != resample.ONE
  batch = {k: np.asarray(v)[None] for k, v in dev.items()}
  np.testing.assert_array_equal(np.asarray(resample.finish(batch)["image"])[0], host["image"])


def _fake_pillow(monkeypatch, resize):
  """Replaces Image.resize for pillow_order's probes (its cache cleared around it)."""
  resample.pillow_order.cache_clear()
  monkeypatch.setattr(Image.Image, "resize", resize)


def test_pass_order_detection_knows_older_pillow_and_refuses_an_unknown_one(monkeypatch):
  def horizontal_first(self, size, resample_filter=None, *a, **k):
    arr = np.asarray(self)
    x = resample.axis_table(arr.shape[1], size[0], "bicubic")
    y = resample.axis_table(arr.shape[0], size[1], "bicubic")
    return Image.fromarray(resample._passes(arr, x, y, vertical_first=False))

  try:
    _fake_pillow(monkeypatch, horizontal_first)   # Pillow < 13: always horizontal first
    assert resample.pillow_order() == "horizontal"
    _fake_pillow(monkeypatch, lambda self, size, *a, **k: Image.new("RGB", size))
    with pytest.raises(RuntimeError, match="use config.device_resize=0"):
      resample.pillow_order()
  finally:
    monkeypatch.undo()
    resample.pillow_order.cache_clear()
  import PIL
  installed = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "horizontal"
  assert resample.pillow_order() == installed
