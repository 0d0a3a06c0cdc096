"""Opt-in reduced-DCT JPEG decoding (config.jpeg_draft): off by default, recorded when on."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from jaxbench import suites
from jaxbench.data import pipeline
from jaxbench.data.evalset import EvalSet
from jaxbench.models.api import Preprocess
from tests.data.test_pipeline import _Records   # a list of records as a source


def _photo(w=512, h=384, seed=0) -> bytes:
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
  buf = io.BytesIO()
  Image.fromarray(small).resize((w, h), Image.BICUBIC).save(buf, "JPEG", quality=90)
  return buf.getvalue()


PP = Preprocess(size=32, resize=32)


@pytest.fixture(scope="module")
def photo():
  """(JPEG bytes, PIL's own draft decode resized, the exact decode resized)."""
  data = _photo()
  # PIL's own draft path by hand: scale 1/8 keeps both sides >= 32 (512x384 -> 64x48).
  ref = Image.open(io.BytesIO(data))
  ref.draft("RGB", (32, 32))
  assert ref.size == (64, 48)
  ref_out = pipeline.resize_crop(ref.convert("RGB"), PP)
  exact_out = pipeline.resize_crop(Image.open(io.BytesIO(data)).convert("RGB"), PP)
  return data, ref_out, exact_out


def test_pil_draft_really_differs_from_the_exact_decode(photo):
  _, ref_out, exact_out = photo
  assert not np.array_equal(ref_out, exact_out)   # draft really differs from exact


def test_draft_decodes_at_reduced_scale(photo):
  data, _, _ = photo
  assert pipeline.decode(data, draft=32).size == (64, 48)


def test_default_decode_is_full_size(photo):
  data, _, _ = photo
  assert pipeline.decode(data).size == (512, 384)   # default: full decode


def test_loader_drafts_only_when_asked(photo):
  data, ref_out, exact_out = photo
  es = EvalSet("t", _Records([{"id": "a.jpg", "label": 0, "image_bytes": data}]), 1)
  drafted = pipeline.LoadExample(es, PP, draft=32).map(0)
  np.testing.assert_array_equal(drafted["image"], ref_out)
  np.testing.assert_array_equal(pipeline.LoadExample(es, PP).map(0)["image"], exact_out)


def test_non_jpeg_files_ignore_draft(photo):
  data, _, _ = photo
  # Non-JPEG files ignore draft (PNG has no DCT).
  buf = io.BytesIO()
  Image.open(io.BytesIO(data)).save(buf, "PNG")
  assert pipeline.decode(buf.getvalue(), draft=32).size == (512, 384)


@pytest.fixture(scope="module")
def exact_and_draft_runs(tiny_clip, tmp_path_factory):
  """An exact and a draft run over the same folder and prepared cache, run once:
  ({name: rows}, {name: cache entries after the run}, cache dir)."""
  from tests.engine.helpers import _config
  model_dir, _ = tiny_clip
  tmp_path = tmp_path_factory.mktemp("draft_runs")
  root = tmp_path / "data"
  for c in ("cat", "dog"):
    os.makedirs(root / c)
    for i in range(2):
      (root / c / f"{c}{i}.jpg").write_bytes(_photo(seed=i + (c == "dog") * 10))
  cache = tmp_path / "cache"
  rows, entries = {}, {}
  for name, draft in [("exact", False), ("draft", True)]:
    cfg = _config(model_dir, str(root), batch_size=4, jpeg_draft=draft,
                  prepared_cache=str(cache))
    rows[name] = suites.run(cfg, str(tmp_path / name))
    entries[name] = sorted(os.listdir(cache))
  return rows, entries, cache


@pytest.mark.parametrize("name", ["exact", "draft"])
def test_runner_records_the_decode_mode(exact_and_draft_runs, name):
  rows, _, _ = exact_and_draft_runs
  assert rows[name][0]["provenance"]["decode"] == ("jpeg_draft" if name == "draft" else "exact")
  assert rows[name][0]["n"] == 4


def test_draft_run_is_a_separate_pass(exact_and_draft_runs):
  rows, _, _ = exact_and_draft_runs
  assert rows["exact"][0]["details"]["pass_id"] != rows["draft"][0]["details"]["pass_id"]


def test_draft_pass_neither_reads_nor_fills_the_prepared_cache(exact_and_draft_runs):
  _, entries, cache = exact_and_draft_runs
  # The exact pass filled the prepared cache; the draft pass neither reads nor adds to it.
  assert any(not e.startswith(".") and os.path.isdir(cache / e) for e in entries["exact"])
  assert entries["draft"] == entries["exact"]
