"""Sources: image folders, TFDS (a real array_record dataset and tfds.testing.mock_data),
arrays; record contract, ids, labels and layout errors."""
import io
import os
import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxbench import labels as labels_lib
from jaxbench.data import catalog, natural, sources

from tests.data import natural_fixtures as fx

W = fx.WNIDS


@pytest.fixture(scope="module")
def wnid_tree(tmp_path_factory):
  """(root, source) of WNID folders with an empty class, a non-image and stray files."""
  root = tmp_path_factory.mktemp("wnid")
  fx.write_wnid_tree(str(root), [(W[999], "b", 0), (W[3], "z", 1), (W[3], "a", 2)])
  os.makedirs(root / W[500])                    # an empty class folder
  (root / W[3] / "notes.txt").write_text("x")   # not an image
  (root / W[3] / ".hidden.JPEG").write_text("x")
  (root / "README.txt").write_text("x")          # files next to the folders are ignored
  return root, sources.ImageFolderSource(str(root))


def test_wnid_folders_give_imagenet_labels_and_sorted_ids(wnid_tree):
  _, src = wnid_tree
  assert src.folder_kind == "wnid" and len(src) == 3
  recs = [src[i] for i in range(3)]
  assert [(r["id"], r["label"]) for r in recs] == [
      (f"{W[3]}/a.JPEG", 3), (f"{W[3]}/z.JPEG", 3), (f"{W[999]}/b.JPEG", 999)]


def test_folder_records_carry_the_undecoded_bytes(wnid_tree):
  root, src = wnid_tree
  with open(root / W[3] / "a.JPEG", "rb") as f:
    assert src[0]["image_bytes"] == f.read()     # bytes, not decoded


def test_empty_classes_and_other_files_are_counted(wnid_tree):
  _, src = wnid_tree
  assert src.empty_classes == (W[500],) and src.other_files == 1
  assert src.summary()["empty_classes"] == [W[500]]


def test_folder_source_survives_pickling(wnid_tree):
  _, src = wnid_tree
  clone = pickle.loads(pickle.dumps(src))
  assert clone[2] == src[2] and "wnid folders" in repr(clone)


def _name_folders(root):
  for name, colour in [("zebra", 0), ("apple", 1), ("mango", 2)]:
    fx.write_image(str(root / name / "1.png"), colour)
  return sources.ImageFolderSource(str(root))


def test_name_folders_are_labelled_in_sorted_order(tmp_path):
  src = _name_folders(tmp_path)
  assert src.folder_kind == "name" and src.class_folders == ("apple", "mango", "zebra")
  assert [src[i]["label"] for i in range(3)] == [0, 1, 2]


def test_unreadable_file_is_recorded_not_raised(tmp_path):
  src = _name_folders(tmp_path)
  os.remove(tmp_path / "mango" / "1.png")
  rec = src[1]
  assert rec["image_bytes"] == b"" and "mango/1.png" in rec["error"]


def test_integer_folders_are_integers(tmp_path):
  for name in ["2", "10", "1"]:
    fx.write_image(str(tmp_path / name / "x.jpeg"), 0)
  src = sources.ImageFolderSource(str(tmp_path))
  assert src.folder_kind == "index"
  assert [(src[i]["id"], src[i]["label"]) for i in range(3)] == [
      ("1/x.jpeg", 1), ("2/x.jpeg", 2), ("10/x.jpeg", 10)]


def _flat(root):
  fx.write_image(str(root / "a.jpg"), 0)


def _empty(root):
  os.makedirs(root / W[0])


def _deep(root):
  fx.write_image(str(root / "imagenet-r" / W[1] / "a.jpg"), 0)


def _mixed(root):
  for name in ["3", "cat"]:
    fx.write_image(str(root / name / "a.jpg"), 0)


@pytest.mark.parametrize("make,kwargs,error,match", [
    (None, {}, sources.LayoutError, "does not exist"),
    (_flat, {}, sources.LayoutError, r"flat folder.*<class folder>/<image file>"),
    (_empty, {}, sources.LayoutError, "zero images found in .*layout"),
    (_deep, {}, sources.LayoutError, "one level too deep"),
    (_mixed, {"folder_kind": "index"}, sources.LayoutError,
     r"expected index class folders.*\['cat'\]"),
    (_mixed, {"folder_kind": "wnids"}, ValueError, "folder_kind must be")],
    ids=["missing", "flat", "empty", "deep", "mixed", "bad_kind"])
def test_layout_errors_name_the_path_and_layout(tmp_path, make, kwargs, error, match):
  root = tmp_path / "layout"
  if make is not None:
    make(root)
  with pytest.raises(error, match=match):
    sources.ImageFolderSource(str(root), **kwargs)


@pytest.fixture(scope="module")
def array_source(tmp_path_factory):
  """(images, ArraySource over rows 2..4 of six memory-mapped images)."""
  tmp = tmp_path_factory.mktemp("arrays")
  images = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
  np.save(tmp / "x.npy", images)
  np.save(tmp / "y.npy", np.array([5, 4, 3, 2, 1, 0]))
  src = sources.ArraySource(str(tmp / "x.npy"), str(tmp / "y.npy"), start=2, stop=5,
                            id_format="s_{:03d}")
  return images, src


def test_array_source_slice_has_its_own_ids_and_labels(array_source):
  images, src = array_source
  assert len(src) == 3 and src.example_id(1) == "s_001"
  rec = src[1]
  assert rec["id"] == "s_001" and rec["label"] == 2
  np.testing.assert_array_equal(rec["image"], images[3])


def test_array_source_pickles_without_its_images(array_source):
  images, src = array_source
  blob = pickle.dumps(src)
  assert len(blob) < 1000          # the images stay on disk
  np.testing.assert_array_equal(pickle.loads(blob)[2]["image"], images[4])


def test_array_source_index_past_the_slice_raises(array_source):
  _, src = array_source
  with pytest.raises(IndexError):
    src[3]


def test_array_source_refuses_non_rgb_arrays():
  with pytest.raises(sources.LayoutError, match=r"uint8 \(N, H, W, 3\)"):
    sources.ArraySource(np.zeros((2, 4, 4), np.uint8), np.zeros(2))


# --- TFDS -------------------------------------------------------------------------


def _prepare(builder_cls, data_dir):
  builder = builder_cls(data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare()


def _tiny_builder():
  class JaxbenchNaturalTiny(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(encoding_format="png"),
          "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
          "file_name": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
      return {"test": self._generate_examples()}

    def _generate_examples(self):
      for i in range(7):
        yield f"k{i}", {"image": fx.image_bytes(i), "label": i % 3, "file_name": f"f{i}.png"}
  return JaxbenchNaturalTiny


def test_tfds_source_reads_a_real_array_record_dataset(tmp_path):
  _prepare(_tiny_builder(), tmp_path)
  src = sources.TfdsSource("jaxbench_natural_tiny", "test", str(tmp_path))
  assert len(src) == 7 and src.label_names() == ("a", "b", "c")
  got = {}
  for i in range(7):
    rec = src[i]
    img = np.asarray(Image.open(io.BytesIO(rec["image_bytes"])).convert("RGB"))
    got[rec["id"]] = (rec["label"], tuple(img[0, 0]))
  # TFDS shuffles records on write: ids, not positions, tie records to examples.
  assert got == {f"f{i}.png": (i % 3, tuple(fx.PALETTE[i].astype(np.uint8))) for i in range(7)}
  clone = pickle.loads(pickle.dumps(src))
  assert clone[3] == src[3]
  assert len(sources.TfdsSource("jaxbench_natural_tiny", "test[:3]", str(tmp_path))) == 3
  fp = src.fingerprint()
  assert (fp["name"], fp["version"], fp["split"], fp["n"]) == \
      ("jaxbench_natural_tiny", "1.0.0", "test", 7)
  fp3 = sources.TfdsSource("jaxbench_natural_tiny", "test[:3]", str(tmp_path)).fingerprint()
  assert sources.describe_change(fp, fp3) == "n 7 -> 3; split 'test' -> 'test[:3]'"
  es = catalog.get(f"tfds(name='jaxbench_natural_tiny', data_dir='{tmp_path}')")
  assert es.name == "tfds(name='jaxbench_natural_tiny')" and es.num_classes == 3
  assert es.class_names == ("a", "b", "c")
  with pytest.raises(sources.LayoutError, match="tfds build"):
    sources.TfdsSource("jaxbench_natural_tiny", "test", str(tmp_path / "elsewhere"))


def _fake_imagenet_builder(name, version, split, records):
  """A builder with the features of TFDS's own ``name`` (1000-way label, file_name)."""
  from tensorflow_datasets.datasets.imagenet2012 import imagenet_common

  class Fake(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version(version)

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(encoding_format="jpeg"),
          "label": tfds.features.ClassLabel(names_file=imagenet_common.label_names_file()),
          "file_name": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples()}

    def _generate_examples(self):
      for file_name, label, colour in records:
        yield file_name, {"image": fx.image_bytes(colour, "JPEG"), "label": label,
                          "file_name": file_name}
  Fake.name = name
  return Fake


@pytest.fixture(scope="module")
def tfds_imagenet(tmp_path_factory):
  """(tfds_dir, A's class indices) of prepared fake imagenet_a and imagenet2012 datasets."""
  tmp = tmp_path_factory.mktemp("tfds_imagenet")
  a = labels_lib.indices_of(labels_lib.imagenet_a_wnids())
  _prepare(_fake_imagenet_builder("imagenet_a", "0.1.0", "test", [
      ("x.jpg", int(a[0]), 0), ("y.jpg", int(a[199]), 1)]), tmp)
  _prepare(_fake_imagenet_builder("imagenet2012", "5.1.0", "validation", [
      ("ILSVRC2012_val_00000001.JPEG", 0, 0),            # tench: not an A class
      ("ILSVRC2012_val_00000002.JPEG", int(a[1]), 1),
      ("ILSVRC2012_val_00000003.JPEG", int(a[2]), 2)]), tmp)
  return tmp, a


def test_tfds_imagenet_a_maps_1000_way_labels_to_200(tfds_imagenet):
  tmp_path, a = tfds_imagenet
  # TFDS's real imagenet_a builder reads these files.
  es = catalog.get(f"imagenet_a(tfds_dir='{tmp_path}')")
  assert es.name == "imagenet_a" and es.num_classes == 200
  assert sorted((es.source[i]["id"], es.source[i]["label"]) for i in range(2)) == [
      ("x.jpg", 0), ("y.jpg", 199)]
  model = fx.ColourModel({0: int(a[0]), 1: int(a[3])})
  metrics, _ = fx.evaluate(es, model)
  assert metrics["top1"] == 1 / 2


def test_tfds_val_control_keeps_only_the_a_classes(tfds_imagenet):
  tmp_path, _ = tfds_imagenet
  ctl = natural.imagenet_val_on_a_classes(tfds_dir=str(tmp_path))
  assert ctl.source.dropped == 1
  assert sorted((ctl.source[i]["id"], ctl.source[i]["label"]) for i in range(2)) == [
      ("ILSVRC2012_val_00000002.JPEG", 1), ("ILSVRC2012_val_00000003.JPEG", 2)]


def test_catalog_falls_back_to_tfds_without_a_folder(tfds_imagenet):
  tmp_path, _ = tfds_imagenet
  # Without a folder under data_root, catalog falls back to tfds_dir.
  es = catalog.get("imagenet", data_root=str(tmp_path / "none"), tfds_dir=str(tmp_path))
  assert len(es.source) == 3 and es.metadata["tfds"] == "imagenet2012"


def test_tfds_label_outside_the_set_is_an_error(tmp_path):
  _prepare(_fake_imagenet_builder("imagenet_r", "0.2.0", "test", [("t.jpg", 0, 0)]), tmp_path)
  es = natural.imagenet_r(tfds_dir=str(tmp_path))
  with pytest.raises(sources.LabelError, match="label 0 is outside"):
    es.source[0]


def test_tfds_readers_with_mock_data():
  calls = []

  def as_data_source(self, split, decoders=None, **kwargs):
    calls.append((self.name, self.builder_config.name, split, sorted(decoders or {})))
    return [{"image": fx.image_bytes(1), "label": 7, "file_name": b"7/abc.jpeg"},
            {"image": fx.image_bytes(2), "label": 123, "file_name": b"123/def.jpeg"}]

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    es = natural.imagenet_v2(variant="top-images", tfds_dir="/nonexistent")
    recs = [es.source[i] for i in range(len(es.source))]
  assert calls == [("imagenet_v2", "topimages", "test", ["image"])]
  assert [(r["id"], r["label"]) for r in recs] == [("7/abc.jpeg", 7), ("123/def.jpeg", 123)]
  assert recs[0]["image_bytes"] == fx.image_bytes(1)
  # Image features stored as arrays (no encoding) come back decoded: 'image' records.
  gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
  with tfds.testing.mock_data(as_data_source_fn=lambda *a, **k: [{"image": gray, "label": 3}]):
    src = sources.TfdsSource("cifar10", "test", "/nonexistent")
    rec = src[0]
  assert rec["id"] == "0" and rec["label"] == 3 and rec["image"].shape == (3, 4, 3)
  np.testing.assert_array_equal(rec["image"][..., 2], gray)


def test_fingerprints_name_what_changed(tmp_path):
  S = sources
  root = tmp_path / "set"
  for c in ("a", "b"):
    (root / c).mkdir(parents=True)
    for i in range(2):
      (root / c / f"{i}.png").write_bytes(b"x" * (i + 1))
  before = S.ImageFolderSource(str(root)).fingerprint()
  assert before["files"]["a/1.png"][0] == 2 and before["n_files"] == 4
  (root / "b" / "9.png").write_bytes(b"new")
  (root / "a" / "0.png").unlink()
  after = S.ImageFolderSource(str(root)).fingerprint()
  assert after["digest"] != before["digest"]
  assert S.describe_change(before, after) == \
      "1 files added under b/, 1 removed under a/, 0 modified"
  # Arrays: content hash for in-memory images, the slice is part of the identity.
  imgs = np.zeros((4, 2, 2, 3), np.uint8)
  a = S.ArraySource(imgs, np.arange(4)).fingerprint()
  imgs2 = imgs.copy()
  imgs2[3, 0, 0, 0] = 1
  assert S.ArraySource(imgs2, np.arange(4)).fingerprint()["digest"] != a["digest"]
  sliced = S.ArraySource(imgs, np.arange(4), start=1).fingerprint()
  assert S.describe_change(a, sliced) == "start 0 -> 1"
  # TFDS-like summaries: the differing fields are named.
  old = {"kind": "tfds", "name": "imagenet_v2", "version": "3.0.0", "split": "test",
         "digest": "1"}
  assert S.describe_change(old, {**old, "version": "3.1.0", "digest": "2"}) == \
      "version '3.0.0' -> '3.1.0'"
