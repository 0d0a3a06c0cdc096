"""configs/synthetic.py end to end through the runner, in every ImageNet-C source mode."""
import importlib.util
import io
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxbench import labels as labels_lib
from jaxbench import store as store_lib, suites
from jaxbench.metrics import imagenet_p as P

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WNIDS = labels_lib.imagenet_wnids()
CLASSES = (0, 5)


def _config(model_dir, **sections):
  spec = importlib.util.spec_from_file_location(
      "synthetic_config", os.path.join(REPO, "configs", "synthetic.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.models = [model_dir]
  c.zeroshot.templates = "photo"
  c.batch_size = 8
  c.num_workers = 1
  c.log_every = 100
  for key, value in sections.items():
    if isinstance(value, dict):
      for k, v in value.items():
        c[key][k] = v
    else:
      c[key] = value
  return c


def _image(seed, size=(48, 40)):
  return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _write_video(path, frames):
  import av
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with av.open(path, "w") as out:
    stream = out.add_stream("mpeg4", rate=1)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    for f in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        out.mux(packet)
    for packet in stream.encode():
      out.mux(packet)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic_data")
  for k, w in enumerate(CLASSES):
    for rel in (f"imagenet/val/{WNIDS[w]}", f"imagenet-c/fog/1/{WNIDS[w]}",
                f"stylized_imagenet/val/{WNIDS[w]}"):
      os.makedirs(root / rel, exist_ok=True)
    name = f"ILSVRC2012_val_{k + 1:08d}"
    Image.fromarray(_image(k)).save(root / f"imagenet/val/{WNIDS[w]}/{name}.JPEG")
    Image.fromarray(_image(k + 10)).save(root / f"imagenet-c/fog/1/{WNIDS[w]}/{name}.JPEG")
    Image.fromarray(_image(k + 20)).save(root / f"stylized_imagenet/val/{WNIDS[w]}/{name}.png")
  frames = np.stack([_image(30 + t, (32, 32)) for t in range(6)])
  _write_video(str(root / f"imagenet-p/rotate/{WNIDS[5]}/{name}.mp4"), frames)
  # TFDS: clean ImageNet val and imagenet2012_corrupted/fog_1, read by the real builders.
  from tensorflow_datasets.datasets.imagenet2012 import imagenet_common
  f = tfds.features

  def jpeg(seed):
    buf = io.BytesIO()
    Image.fromarray(_image(seed, (224, 224))).save(buf, "JPEG")
    return buf.getvalue()

  for name, version, config, split in (("imagenet2012", "5.1.0", None, "validation"),
                                       ("imagenet2012_corrupted", "3.1.0", "fog_1",
                                        "validation")):
    class Fake(tfds.core.GeneratorBasedBuilder, skip_registration=True):
      VERSION = tfds.core.Version(version)
      BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=config)] if config else []

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=f.FeaturesDict({
            "image": f.Image(encoding_format="jpeg"),
            "label": f.ClassLabel(names_file=imagenet_common.label_names_file()),
            "file_name": f.Text()}))

      def _split_generators(self, dl_manager, split=split):
        return {split: self._generate_examples()}

      def _generate_examples(self):
        for k, w in enumerate(CLASSES):
          yield k, {"image": jpeg(40 + k), "label": w, "file_name": f"v{k}.JPEG"}
    Fake.name = name
    kwargs = {"config": config} if config else {}
    Fake(data_dir=str(root / "tfds"), file_format="array_record", **kwargs).download_and_prepare()
  return root


def _by(rows):
  return {(r["dataset"], r["transform"], r["metric"]): r for r in rows}


def _outputs(workdir, dataset_prefix):
  st = store_lib.Store(workdir)
  for pid in os.listdir(os.path.join(workdir, "passes")):
    import json
    with open(os.path.join(workdir, "passes", pid, "meta.json")) as fh:
      meta = json.load(fh)
    if meta["dataset"].startswith(dataset_prefix):
      return st.outputs(pid)
  raise KeyError(dataset_prefix)


@pytest.fixture(scope="module")
def disk_run(tiny_clip, data_root, tmp_path_factory):
  """Disk mode: ImageNet-C JPEGs, ImageNet-P MP4s, Stylized PNGs, clean val.

  Returns:
    (rows keyed by (dataset, transform, metric), workdir).
  """
  model_dir, _ = tiny_clip
  wd = str(tmp_path_factory.mktemp("disk"))
  rows = suites.run(_config(model_dir, data_root=str(data_root),
                            imagenet_c=dict(corruptions="fog", severities="1"),
                            imagenet_p=dict(perturbations="rotate")), wd)
  return _by(rows), wd


P_SPEC = "imagenet_p(difficulty=1, perturbation='rotate')"


def test_disk_imagenet_c_row_records_what_was_evaluated(disk_run):
  by, _ = disk_run
  c_row = by[("imagenet_c(corruption='fog', severity=1)", "clean", "top1")]
  assert c_row["n"] == 2 and c_row["suite"] == "synthetic"
  assert c_row["details"]["dataset_meta"]["evaluated"] == ["fog/1"]
  assert c_row["details"]["dataset_meta"]["resize_to_crop"]


def test_disk_mode_counts_every_image_of_every_set(disk_run):
  by, _ = disk_run
  assert by[("imagenet", "clean", "top1")]["n"] == 2
  assert by[("stylized_imagenet", "clean", "top1")]["n"] == 2
  assert by[(P_SPEC, "clean", "flip_prob")]["n"] == 6


def test_disk_flip_probability_is_the_references(disk_run):
  by, wd = disk_run
  p_row = by[(P_SPEC, "clean", "flip_prob")]
  # The flip probability the runner recorded is the reference's, from the
  # stored per-frame predictions (consecutive frames, step 1).
  out = _outputs(wd, "imagenet_p")
  preds = out["pred"][np.argsort(out["index"])]
  expected = P.scores([preds], "rotate", 1)["flip_prob"]
  assert p_row["value"] == pytest.approx(expected)
  assert p_row["value"] == pytest.approx(np.mean(preds[1:] != preds[:-1]))


def test_disk_top5_distance_is_the_references(disk_run):
  by, wd = disk_run
  # Top-5 distance from the stored ranked top-5 classes.
  out = _outputs(wd, "imagenet_p")
  t5_row = by[(P_SPEC, "clean", "t5d")]
  top5 = out["top5"][np.argsort(out["index"])]
  assert t5_row["value"] == pytest.approx(P.scores([top5], "rotate", 1)["t5d"])


def test_tfds_mode_keys_imagenet2012_corrupted_under_its_own_name(tiny_clip, data_root,
                                                                 tmp_path):
  model_dir, _ = tiny_clip
  tfds_dir = str(data_root / "tfds")
  rows = suites.run(_config(model_dir, parts="imagenet_c",
                            imagenet=dict(tfds_dir=tfds_dir),
                            imagenet_c=dict(source="tfds", tfds_dir=tfds_dir,
                                            corruptions="fog", severities="1")),
                    str(tmp_path / "tfds"))
  by = _by(rows)
  assert by[("imagenet2012_corrupted(corruption='fog', severity=1)", "clean", "top1")]["n"] == 2
  assert by[("imagenet", "clean", "top1")]["n"] == 2


@pytest.fixture(scope="module")
def generated_run(tiny_clip, data_root, tmp_path_factory):
  """Generated mode: corruptions as transforms on ImageNet val (device contrast, host JPEG).

  Returns:
    (rows keyed by (dataset, transform, metric), workdir).
  """
  model_dir, _ = tiny_clip
  wd = str(tmp_path_factory.mktemp("generated"))
  rows = suites.run(_config(model_dir, data_root=str(data_root),
                            imagenet_c=dict(source="generated", severities="5",
                                            corruptions="contrast,jpeg_compression")), wd)
  return _by(rows), wd


def test_generated_mode_evaluates_imagenet_val_only(generated_run):
  by, wd = generated_run
  assert {d for d, _, _ in by} == {"imagenet"}
  clean = _outputs(wd, "imagenet")
  assert len(clean["index"]) == 2


@pytest.mark.parametrize("name", ("contrast", "jpeg_compression"))
def test_generated_shift_rows_record_the_official_jpeg_save(generated_run, name):
  by, _ = generated_run
  row = by[("imagenet",
            f"shift:imagenet_c(corruption={name!r}, jpeg_quality=85, severity=5)", "top1")]
  assert row["n"] == 2
  # The official files' JPEG-85 save is recorded with the row.
  assert row["details"]["shift"]["jpeg_quality"] == 85
  assert row["details"]["shift"]["source"] == "generated"
