"""Synthetic-shift sets: ImageNet-C trees, TFDS variants, ImageNet-P videos, Stylized,
cue conflict."""
import io
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxbench import labels as labels_lib
from jaxbench.data import catalog, sources
from jaxbench.data import synthetic as S

WNIDS = labels_lib.imagenet_wnids()


def _jpeg(colour, size=16, fmt="JPEG"):
  buf = io.BytesIO()
  Image.fromarray(np.full((size, size, 3), colour, np.uint8)).save(buf, fmt)
  return buf.getvalue()


def write_imagenet_c(root, sets, wnids=(0, 5), ext=".JPEG"):
  """root/<c>/<s>/<wnid>/img<k>.JPEG for each (c, s) in sets."""
  for c, s in sets:
    for k, w in enumerate(wnids):
      d = os.path.join(root, c, str(s), WNIDS[w])
      os.makedirs(d, exist_ok=True)
      with open(os.path.join(d, f"ILSVRC2012_val_{k:08d}{ext}"), "wb") as f:
        f.write(_jpeg(40 * k + 10 * s))


def write_video(path, colours, size=32, codec="mpeg4"):
  """A short MP4 whose frame t is a solid colour[t] (PyAV)."""
  import av
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with av.open(path, "w") as out:
    stream = out.add_stream(codec, rate=1)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    for c in colours:
      frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), c, np.uint8), format="rgb24")
      for packet in stream.encode(frame):
        out.mux(packet)
    for packet in stream.encode():
      out.mux(packet)


@pytest.fixture(scope="module")
def c_tree(tmp_path_factory):
  """An ImageNet-C folder with fog 1-3, contrast 1-5 and a folder that is no corruption."""
  root = str(tmp_path_factory.mktemp("c_tree") / "imagenet-c")
  write_imagenet_c(root, [("fog", s) for s in (1, 2, 3)] + [("contrast", s) for s in range(1, 6)])
  os.makedirs(os.path.join(root, "not_a_corruption"))
  return root


@pytest.fixture(scope="module")
def fog_2(c_tree):
  return catalog.get(f"imagenet_c(corruption='fog', severity=2, root={c_tree!r})")


def test_imagenet_c_disk_one_set_lists_its_images(fog_2):
  es = fog_2
  assert es.name == "imagenet_c(corruption='fog', severity=2)" and es.num_classes == 1000
  recs = [es.source[i] for i in range(len(es))]
  assert [(r["id"], r["label"]) for r in recs] == [
      (f"fog/2/{WNIDS[0]}/ILSVRC2012_val_00000000.JPEG", 0),
      (f"fog/2/{WNIDS[5]}/ILSVRC2012_val_00000001.JPEG", 5)]
  assert Image.open(io.BytesIO(recs[1]["image_bytes"])).size == (16, 16)


def test_imagenet_c_disk_metadata_records_the_set_and_preprocess(fog_2):
  es = fog_2
  assert es.metadata["evaluated"] == ["fog/2"] and es.metadata["missing"] == []
  assert es.metadata["eval_preprocess"] == "center_crop" and es.metadata["resize_to_crop"]


def test_imagenet_c_disk_unknown_folders_are_listed(fog_2):
  assert fog_2.metadata["unknown_folders"] == ["not_a_corruption"]


def test_imagenet_c_disk_resize_crop_preprocess_is_in_the_name(c_tree):
  rc = catalog.get(f"imagenet_c(corruption='fog', severity=2, root={c_tree!r}, "
                   "preprocess='resize_crop')")
  assert rc.name.endswith("preprocess='resize_crop', severity=2)")
  assert not rc.metadata["resize_to_crop"]


def test_imagenet_c_disk_missing_set_is_named_with_what_the_tree_holds(c_tree):
  # An explicitly requested set that is not there: named, with what the tree holds.
  with pytest.raises(sources.LayoutError, match=r"lacks fog/5.*contrast/1,2,3,4,5, fog/1,2,3"):
    catalog.get(f"imagenet_c(corruption='fog', severity=5, root={c_tree!r})")


@pytest.mark.parametrize("args,match", [
    ("corruption='fogg', severity=1", "corruption must be one of"),
    ("corruption='fog', severity=1, preprocess='x'", "preprocess must be one of")])
def test_imagenet_c_disk_bad_argument_is_refused(c_tree, args, match):
  with pytest.raises(ValueError, match=match):
    catalog.get(f"imagenet_c({args}, root={c_tree!r})")


@pytest.fixture(scope="module")
def c_tree_extra(tmp_path_factory):
  """An ImageNet-C folder with fog 1-3, contrast 1-5 and the extra corruption saturate/1."""
  root = str(tmp_path_factory.mktemp("c_tree_extra") / "imagenet-c")
  write_imagenet_c(root, [("fog", s) for s in (1, 2, 3)] + [("contrast", s) for s in range(1, 6)]
                   + [("saturate", 1)])
  return root


@pytest.fixture(scope="module")
def every_c_set(c_tree_extra):
  return catalog.get(f"imagenet_c(root={c_tree_extra!r})")


def test_imagenet_c_disk_one_corruption_takes_its_present_severities(c_tree_extra):
  one = catalog.get(f"imagenet_c(corruption='fog', root={c_tree_extra!r})")
  assert one.metadata["evaluated"] == ["fog/1", "fog/2", "fog/3"]
  assert one.metadata["missing"] == ["fog/4", "fog/5"] and len(one) == 6


def test_imagenet_c_disk_all_present_sets_with_the_missing_named(every_c_set):
  every = every_c_set
  assert len(every) == 16 and len(every.metadata["evaluated"]) == 8
  assert "gaussian_noise/1" in every.metadata["missing"] and len(every.metadata["missing"]) == 67
  assert "saturate/1" not in every.metadata["evaluated"]   # extra corruptions: extra=True


def test_imagenet_c_disk_extra_corruptions_when_asked(c_tree_extra):
  extra = catalog.get(f"imagenet_c(root={c_tree_extra!r}, extra=True)")
  assert "saturate/1" in extra.metadata["evaluated"]


def test_imagenet_c_disk_metrics_per_set_and_ce_only_for_complete_corruptions(every_c_set):
  every = every_c_set
  ids = [every.source.example_id(i) for i in range(len(every))]
  correct = np.array([c.startswith("contrast") or i % 2 == 0 for i, c in enumerate(ids)])
  m = every.sequence_metric_fn(ids, None, correct)
  assert m["top1/contrast/4"] == 1.0 and m["top1/fog/1"] == 0.5
  assert m["ce/contrast"] == pytest.approx(0.0) and "ce/fog" not in m and "mce" not in m


def _prepare(name, version, config, split, features, examples, data_dir):
  class Fake(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version(version)
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=config)] if config else []

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples()}

    def _generate_examples(self):
      yield from examples
  Fake.name = name
  kwargs = {"config": config} if config else {}
  Fake(data_dir=str(data_dir), file_format="array_record", **kwargs).download_and_prepare()


def test_tfds_variants_read_with_the_real_builders(tmp_path):
  from tensorflow_datasets.datasets.imagenet2012 import imagenet_common
  f = tfds.features
  _prepare("imagenet2012_corrupted", "3.1.0", "fog_3", "validation", f.FeaturesDict({
      "image": f.Image(shape=(224, 224, 3), encoding_format="jpeg"),
      "label": f.ClassLabel(names_file=imagenet_common.label_names_file()),
      "file_name": f.Text()}),
      [(f"k{i}", {"image": _jpeg(50 * i, 224), "label": 7 * i, "file_name": f"v{i}.JPEG"})
       for i in range(3)], tmp_path)
  es = catalog.get(f"imagenet2012_corrupted(corruption='fog', severity=3, tfds_dir='{tmp_path}')")
  assert es.name == "imagenet2012_corrupted(corruption='fog', severity=3)"
  assert sorted((es.source[i]["id"], es.source[i]["label"]) for i in range(3)) == [
      ("v0.JPEG", 0), ("v1.JPEG", 7), ("v2.JPEG", 14)]
  assert "TFDS regeneration" in es.metadata["data"]
  # cifar10_corrupted: the file name glass_blur is TFDS's frosted_glass_blur.
  _prepare("cifar10_corrupted", "1.0.0", "frosted_glass_blur_2", "test", f.FeaturesDict({
      "image": f.Image(shape=(32, 32, 3)), "label": f.ClassLabel(num_classes=10)}),
      [(i, {"image": _jpeg(30 * i, 32, "PNG"), "label": i}) for i in range(4)],
      tmp_path)
  es = catalog.get(f"cifar10_corrupted(corruption='glass_blur', severity=2, tfds_dir='{tmp_path}')")
  assert es.metadata["tfds"] == "cifar10_corrupted/frosted_glass_blur_2" and len(es) == 4
  assert es.num_classes == 10 and sorted(es.source[i]["label"] for i in range(4)) == [0, 1, 2, 3]
  with pytest.raises(sources.LayoutError, match="elastic_1"):
    catalog.get(f"cifar10_corrupted(corruption='elastic_transform', severity=1, "
                f"tfds_dir='{tmp_path}')")


@pytest.fixture(scope="module")
def geirhos(tmp_path_factory):
  """(eval set, TFDS records) of cue-conflict stimuli prepared with the real builder."""
  from tensorflow_datasets.datasets.imagenet2012 import imagenet_common
  tmp_path = tmp_path_factory.mktemp("geirhos")
  f = tfds.features
  names = list(S.GEIRHOS_CLASSES)
  # Category k maps to ImageNet classes {10k, 10k + 1}.
  recs = []
  pairs = [(k, (k + 1) % 16) for k in range(16)] + [(0, 0), (3, 3)]
  for i, (s, t) in enumerate(pairs):
    recs.append((f"r{i}", {"image": _jpeg(i), "shape_label": s, "texture_label": t,
                           "shape_imagenet_labels": [10 * s, 10 * s + 1],
                           "texture_imagenet_labels": [10 * t, 10 * t + 1],
                           "file_name": f"{names[s]}{i}-{names[t]}{i}.png"}))
  _prepare("geirhos_conflict_stimuli", "1.0.0", None, "test", f.FeaturesDict({
      "image": f.Image(), "shape_label": f.ClassLabel(names=names),
      "shape_imagenet_labels": f.Sequence(f.ClassLabel(
          names_file=imagenet_common.label_names_file())),
      "texture_label": f.ClassLabel(names=names),
      "texture_imagenet_labels": f.Sequence(f.ClassLabel(
          names_file=imagenet_common.label_names_file())),
      "file_name": f.Text()}), recs, tmp_path)
  return catalog.get(f"geirhos_conflict(tfds_dir='{tmp_path}')"), recs


def test_geirhos_cue_conflict_counts_its_conflict_images(geirhos):
  es, _ = geirhos
  assert es.num_classes == 16 and es.metadata["conflict_images"] == 16 and len(es) == 18


def test_geirhos_projection_takes_the_mean_probability(geirhos):
  import jax.numpy as jnp
  es, _ = geirhos
  # Mean probability, not max: two members at 0.3 beat one member at 0.5.
  logits = np.full((1, 1000), -30.0, np.float32)
  logits[0, [20, 21]] = np.log(0.3)
  logits[0, 50] = np.log(0.4)
  assert int(jnp.argmax(es.project(jnp.asarray(logits)), axis=1)[0]) == 2


def test_geirhos_shape_bias_by_hand(geirhos):
  es, recs = geirhos
  ids = [es.source[i]["id"] for i in range(len(es))]
  shape_of = {r[1]["file_name"]: r[1]["shape_label"] for r in recs}
  texture_of = {r[1]["file_name"]: r[1]["texture_label"] for r in recs}
  # Decide by shape on 6 conflict images, by texture on 2, neither on the rest.
  preds = []
  n_shape = n_texture = 0
  for i in ids:
    s, t = shape_of[i], texture_of[i]
    if s != t and n_shape < 6:
      preds.append(s); n_shape += 1
    elif s != t and n_texture < 2:
      preds.append(t); n_texture += 1
    else:
      preds.append(15 - s if s != 15 - t else 7)
  m = es.sequence_metric_fn(ids, np.array(preds), None)
  assert m["shape_bias"] == pytest.approx(6 / 8)
  assert m["shape_match"] == pytest.approx(6 / 16) and m["texture_match"] == pytest.approx(2 / 16)


@pytest.fixture(scope="module")
def p_videos(tmp_path_factory):
  """ImageNet-P: root, the rotate eval set, its records, their ids and bright/dark predictions."""
  root = str(tmp_path_factory.mktemp("p_videos") / "imagenet-p")
  colours = [[0, 0, 0], [255, 255, 255], [255, 255, 255], [0, 0, 0], [0, 0, 0]]
  write_video(os.path.join(root, "rotate", WNIDS[3], "a.mp4"), colours)
  write_video(os.path.join(root, "rotate", WNIDS[9], "b.mp4"), colours[:3])
  with open(os.path.join(root, "rotate", WNIDS[9], "broken.mp4"), "wb") as f:
    f.write(b"\x00\x00\x00\x18ftypmp42 not a video")
  write_video(os.path.join(root, "gaussian_noise_2", WNIDS[1], "n.mp4"), colours[:4])
  es = catalog.get(f"imagenet_p(perturbation='rotate', root={root!r})")
  recs = [es.source[i] for i in range(len(es))]
  # A "model" that predicts class 1 for bright frames, 0 for dark ones.
  preds = np.array([int(r["image"].mean() > 128) for r in recs])
  return {"root": root, "es": es, "recs": recs, "ids": [r["id"] for r in recs],
          "preds": preds}


def test_imagenet_p_videos_are_read_frame_by_frame(p_videos):
  es, recs = p_videos["es"], p_videos["recs"]
  assert es.name == "imagenet_p(perturbation='rotate')" and len(es) == 8
  assert es.metadata["videos"] == 2 and es.metadata["resize_to_crop"]
  assert recs[0]["id"] == f"rotate/{WNIDS[3]}/a.mp4/000" and recs[0]["label"] == 3
  means = [r["image"].mean() for r in recs]
  assert means[0] < 30 and means[1] > 225 and recs[1]["image"].shape == (32, 32, 3)


def test_imagenet_p_unreadable_video_is_skipped_by_name(p_videos):
  skipped = p_videos["es"].metadata["skipped_videos"]
  assert [s["video"] for s in skipped] == [f"rotate/{WNIDS[9]}/broken.mp4"]


def test_imagenet_p_flip_probability_by_hand(p_videos):
  out = p_videos["es"].sequence_metric_fn(p_videos["ids"], p_videos["preds"], None)
  # Video a: 0 1 1 0 0 -> 2 flips / 4; video b: 0 1 1 -> 1 / 2.
  assert out["flip_prob"] == pytest.approx((2 / 4 + 1 / 2) / 2)


def test_imagenet_p_difficulty_2_steps_two_frames(p_videos):
  root = p_videos["root"]
  d2 = catalog.get(f"imagenet_p(perturbation='rotate', difficulty=2, root={root!r})")
  # Step 2: a: [0 1 0] + [1 0] -> 3 / 3; b: [0 1] + [] -> 1 / 1.
  assert d2.sequence_metric_fn(p_videos["ids"], p_videos["preds"], None)["flip_prob"] == \
      pytest.approx(1.0)


def test_imagenet_p_noise_reads_the_folder_of_its_difficulty(p_videos):
  root = p_videos["root"]
  noise = catalog.get(f"imagenet_p(perturbation='gaussian_noise', difficulty=2, root={root!r})")
  assert noise.metadata["folder"] == "gaussian_noise_2" and len(noise) == 4


def test_imagenet_p_missing_noise_folder_is_named(p_videos):
  root = p_videos["root"]
  with pytest.raises(sources.LayoutError, match="gaussian_noise_3"):
    catalog.get(f"imagenet_p(perturbation='gaussian_noise', difficulty=3, root={root!r})")


def test_imagenet_p_top5_predictions_add_the_top5_distance(p_videos):
  # Top-5 predictions add the top-5 distance.
  top5 = np.stack([np.roll(np.arange(5), int(p)) for p in p_videos["preds"]])
  assert "t5d" in p_videos["es"].sequence_metric_fn(p_videos["ids"], top5, None)


@pytest.fixture(scope="module")
def generated_p(tmp_path_factory):
  """(data_root, generated ImageNet-P noise sequences over two val images)."""
  tmp_path = tmp_path_factory.mktemp("generated_p")
  val = tmp_path / "imagenet" / "val"
  for k, w in enumerate((2, 4)):
    d = val / WNIDS[w]
    d.mkdir(parents=True)
    arr = np.random.default_rng(k).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(arr).save(d / f"ILSVRC2012_val_{k:08d}.JPEG")
  es = catalog.get("imagenet_p_generated(perturbation='gaussian_noise', difficulty=3, seed=1)",
                   data_root=str(tmp_path))
  return tmp_path, es


def test_generated_imagenet_p_has_31_frames_per_image(generated_p):
  _, es = generated_p
  assert es.name == "imagenet_p_generated(difficulty=3, perturbation='gaussian_noise', seed=1)"
  assert len(es) == 2 * 31 and es.metadata["source"].startswith("GeneratedSequenceSource")
  r0 = es.source[0]
  assert r0["id"].endswith("ILSVRC2012_val_00000000.JPEG/000") and r0["label"] == 2
  assert r0["image"].shape == (224, 224, 3)
  assert es.source[31]["label"] == 4


def test_generated_imagenet_p_noise_has_the_difficulty_s_strength(generated_p):
  _, es = generated_p
  r0, r1 = es.source[0], es.source[1]
  assert 0.05 * 255 < np.std(r1["image"].astype(float) - r0["image"]) < 0.11 * 255


def test_generated_imagenet_p_is_the_same_for_the_same_seed(generated_p):
  tmp_path, es = generated_p
  again = catalog.get("imagenet_p_generated(perturbation='gaussian_noise', difficulty=3, "
                      "seed=1)", data_root=str(tmp_path))
  np.testing.assert_array_equal(again.source[40]["image"], es.source[40]["image"])


def test_stylized_imagenet_reads_png_val_folders(tmp_path):
  # Stylized-ImageNet: val/<wnid>/*.png.
  sty = tmp_path / "stylized_imagenet" / "val" / WNIDS[7]
  sty.mkdir(parents=True)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(sty / "x.png")
  st = catalog.get("stylized_imagenet", data_root=str(tmp_path))
  assert len(st) == 1 and st.source[0]["label"] == 7 and st.metadata["extensions"] == [".png"]


def test_stylized_imagenet_missing_is_named(tmp_path):
  with pytest.raises(sources.DataNotFound, match="stylized_imagenet"):
    catalog.get("stylized_imagenet", data_root=str(tmp_path / "nothing"))
