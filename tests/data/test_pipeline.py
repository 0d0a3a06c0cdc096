"""The grain pipeline: decoding odd files, resize+crop, padding and coverage."""
import io

import numpy as np
import pytest
import torch  # noqa: F401  (torchvision needs it imported first)
import torchvision.transforms as T
from PIL import Image

from jaxbench.data import pipeline
from jaxbench.data.evalset import EvalSet
from jaxbench.models.api import Preprocess


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
  buf = io.BytesIO()
  img.save(buf, fmt, **kw)
  return buf.getvalue()


@pytest.mark.parametrize("w,h,interp", [(500, 375, "bicubic"), (375, 500, "bilinear"),
                                        (224, 224, "bicubic"), (61, 300, "bicubic")])
def test_resize_crop_equals_torchvision(w, h, interp):
  rng = np.random.default_rng(w * h)
  img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
  pp = Preprocess(size=224, resize=256 if interp == "bilinear" else 224, interpolation=interp)
  mode = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}
  ref = T.Compose([T.Resize(pp.resize, interpolation=mode[interp]), T.CenterCrop(pp.size)])
  np.testing.assert_array_equal(pipeline.resize_crop(img, pp), np.asarray(ref(img)))


class _Records:
  def __init__(self, records):
    self.records = records

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    return self.records[i]


def _odd_files():
  rng = np.random.default_rng(0)
  rgb = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
  good_jpeg = _encode(rgb, "JPEG")
  return {
      "rgb.JPEG": (good_jpeg, True),
      "cmyk.JPEG": (_encode(rgb.convert("CMYK"), "JPEG"), True),
      "gray.JPEG": (_encode(rgb.convert("L"), "JPEG"), True),
      "rgba.png": (_encode(rgb.convert("RGBA"), "PNG"), True),
      "palette.png": (_encode(rgb.convert("P"), "PNG"), True),
      "png_named.JPEG": (_encode(rgb, "PNG"), True),
      "truncated.JPEG": (good_jpeg[: len(good_jpeg) // 2], False),
      "corrupt.JPEG": (b"\xff\xd8\xff\xe0 this is not a jpeg", False),
      "empty.JPEG": (b"", False),
  }


_ODD_NAMES = list(_odd_files())


@pytest.fixture(scope="module")
def odd():
  """(files, eval set, loader) over the odd files, built once."""
  files = _odd_files()
  records = [{"id": k, "label": i, "image_bytes": v[0]} for i, (k, v) in
             enumerate(files.items())]
  es = EvalSet("odd", _Records(records), num_classes=10)
  return files, es, pipeline.LoadExample(es, Preprocess(size=16, resize=16))


@pytest.mark.parametrize("name", _ODD_NAMES)
def test_odd_image_is_converted_or_flagged(odd, name):
  files, _, load = odd
  ok = files[name][1]
  ex = load.map(list(files).index(name))
  assert ex["image"].shape == (16, 16, 3) and ex["image"].dtype == np.uint8, name
  assert bool(ex["mask"]) == ok and bool(ex["bad"]) == (not ok), name
  if ok:
    assert ex["image"].std() > 0, name   # real pixels, not the zero placeholder
    assert ex["uid"] == pipeline.example_uid(name)


@pytest.mark.parametrize("name,reason", [("empty.JPEG", "cannot identify"),
                                         ("corrupt.JPEG", "OSError"),
                                         ("truncated.JPEG", "truncated")])
def test_recorded_reason_names_the_failure(odd, name, reason):
  files, es, _ = odd
  error = pipeline.describe_error(es, list(files).index(name))
  assert reason in (error.lower() if reason == "truncated" else error)


@pytest.mark.parametrize("n,batch,procs", [(0, 4, 1), (1, 4, 1), (37, 8, 1), (37, 8, 2),
                                           (37, 6, 3), (5, 64, 8), (64, 64, 4)])
def test_plan_covers_every_example_exactly_once(n, batch, procs):
  todo = np.arange(n) * 3   # any index set
  plans = [pipeline.plan(todo, batch, p, procs) for p in range(procs)]
  assert len({pl.num_batches for pl in plans}) == 1
  for pl in plans:
    assert len(pl.indices) == pl.num_batches * batch // procs
  allidx = np.concatenate([pl.indices for pl in plans])
  real = allidx[allidx >= 0]
  np.testing.assert_array_equal(np.sort(real), todo)


def test_plan_refuses_a_batch_not_divisible_by_the_processes():
  with pytest.raises(ValueError, match="multiple of the process count"):
    pipeline.plan(np.arange(37) * 3, 5, 0, 2)


@pytest.fixture(scope="module")
def ten_in_batches_of_four():
  """(eval set, plan, batches) of 10 array examples in batches of 4."""
  rng = np.random.default_rng(1)
  records = [{"id": f"x{i}", "label": i % 3,
              "image": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)} for i in range(10)]
  es = EvalSet("arr", _Records(records), num_classes=3)
  pl = pipeline.plan(np.arange(10), 4)
  return es, pl, list(pipeline.batches(es, Preprocess(size=8, resize=8), pl, num_threads=2))


def test_batches_pad_and_mask_the_last_batch(ten_in_batches_of_four):
  _, _, out = ten_in_batches_of_four
  assert [b["image"].shape for b in out] == [(4, 8, 8, 3)] * 3
  mask = np.concatenate([b["mask"] for b in out])
  index = np.concatenate([b["index"] for b in out])
  np.testing.assert_array_equal(mask, [True] * 10 + [False] * 2)
  np.testing.assert_array_equal(index[:10], np.arange(10))


def test_batches_resume_at_a_start_batch(ten_in_batches_of_four):
  es, pl, out = ten_in_batches_of_four
  # Resuming from batch 2 yields exactly the last batch.
  rest = list(pipeline.batches(es, Preprocess(size=8, resize=8), pl, start_batch=2))
  np.testing.assert_array_equal(rest[0]["index"], out[2]["index"])


def _noisy_loader(seed):
  """A loader of four grey images with a seeded host-side noise shift."""
  records = [{"id": f"x{i}", "label": 0, "image": np.full((8, 8, 3), 128, np.uint8)}
             for i in range(4)]
  es = EvalSet("arr", _Records(records), num_classes=1)

  def noise(img, rng):
    return np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)

  return pipeline.LoadExample(es, Preprocess(size=8, resize=8), seed=seed, host_shift=noise)


def test_host_shift_randomness_repeats_for_the_same_seed_and_id():
  np.testing.assert_array_equal(_noisy_loader(1).map(2)["image"],
                                _noisy_loader(1).map(2)["image"])


def test_host_shift_randomness_differs_between_ids():
  a = _noisy_loader(1)
  assert not np.array_equal(a.map(2)["image"], a.map(3)["image"])


def test_host_shift_randomness_differs_between_seeds():
  assert not np.array_equal(_noisy_loader(1).map(2)["image"], _noisy_loader(2).map(2)["image"])


def test_squash_resize_matches_transformers_processor_layout():
  """crop='squash': both sides to `resize` (no aspect kept), then center crop."""
  rng = np.random.default_rng(3)
  img = Image.fromarray(rng.integers(0, 256, (300, 500, 3), dtype=np.uint8))
  pp = Preprocess(size=224, resize=224, interpolation="bilinear", crop="squash")
  want = np.asarray(img.resize((224, 224), Image.BILINEAR))
  np.testing.assert_array_equal(pipeline.resize_crop(img, pp), want)
  pp2 = Preprocess(size=200, resize=224, interpolation="bicubic", crop="squash")
  want2 = np.asarray(img.resize((224, 224), Image.BICUBIC))[12:212, 12:212]
  np.testing.assert_array_equal(pipeline.resize_crop(img, pp2), want2)


class _WatchedRecords(_Records):
  """Records that count the readers' fetches and note which thread made each.

  Args:
    records: the records.
    delay: seconds each fetch takes (a decode's worth, so a pool's threads share work).
  """

  def __init__(self, records, delay: float = 0.0):
    super().__init__(records)
    self.fetched, self.threads, self.delay = 0, {}, delay

  def __getitem__(self, i):
    import threading
    import time
    time.sleep(self.delay)
    self.fetched += 1
    self.threads[i] = threading.current_thread().name
    return self.records[i]


def _random_records(n, seed, delay=0.0):
  rng = np.random.default_rng(seed)
  return _WatchedRecords([{"id": f"x{i}", "label": 0,
                           "image": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)}
                          for i in range(n)], delay)


def test_the_first_batch_is_decoded_by_all_reader_threads():
  # One thread per batch made a 512-image first batch wait a whole batch of decodes.
  records = _random_records(64, seed=3, delay=0.01)
  es = EvalSet("arr", records, num_classes=3)
  it = pipeline.batches(es, Preprocess(size=8, resize=8), pipeline.plan(np.arange(64), 32),
                        num_threads=4, prefetch=1)
  first = next(it)
  np.testing.assert_array_equal(first["index"], np.arange(32))
  assert len({records.threads[i] for i in range(32)}) >= 3, records.threads


def test_readers_stay_a_bounded_number_of_images_ahead():
  # A slow model must not make the readers decode the whole set into memory:
  # at most max(prefetch, threads) batches ahead.
  import time
  records = _random_records(400, seed=2)
  es = EvalSet("arr", records, num_classes=3)
  it = pipeline.batches(es, Preprocess(size=8, resize=8), pipeline.plan(np.arange(400), 4),
                        num_threads=2, prefetch=3)
  next(it)
  time.sleep(1.0)   # the consumer is slow; the readers keep going only as far as allowed
  assert 4 <= records.fetched <= 4 + 3 * 4 + 4, records.fetched
