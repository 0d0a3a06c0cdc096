"""The natural-shift readers on fixtures in the official layouts, scored with a model
whose predictions the test controls; expected values are worked out by hand."""
import dataclasses
import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from jaxbench import labels as labels_lib
from jaxbench.data import catalog, natural, sources

from tests.data import natural_fixtures as fx

W = fx.WNIDS


def test_imagenet_v2_folder_10_is_class_10_not_text_order(tmp_path):
  root = tmp_path / "imagenetv2-matched-frequency-format-val"
  # Text order would read folders 0, 1, 10, 2 as classes 0, 1, 2, 3.
  for folder, colour in [("0", 0), ("1", 1), ("10", 2), ("2", 3)]:
    for j in range(2):
      fx.write_image(str(root / folder / f"{j}abc.jpeg"), colour)
  es = catalog.get("imagenet_v2", data_root=str(tmp_path))
  assert es.name == "imagenet_v2" and es.num_classes == 1000 and es.project is None
  got = {es.source[i]["id"]: es.source[i]["label"] for i in range(len(es.source))}
  assert got == {"0/0abc.jpeg": 0, "0/1abc.jpeg": 0, "1/0abc.jpeg": 1, "1/1abc.jpeg": 1,
                 "2/0abc.jpeg": 2, "2/1abc.jpeg": 2, "10/0abc.jpeg": 10, "10/1abc.jpeg": 10}
  # The model names the class each folder is: all right iff '10' means 10.
  model = fx.ColourModel({0: 0, 1: 1, 2: 10, 3: 2})
  metrics, _ = fx.evaluate(es, model)
  assert metrics["top1"] == 1.0 and metrics["n"] == 8
  # Another variant has its own folder name.
  with pytest.raises(sources.DataNotFound, match="imagenetv2-threshold0.7-format-val"):
    catalog.get("imagenet_v2(variant='threshold-0.7')", data_root=str(tmp_path))
  with pytest.raises(ValueError, match="unknown variant"):
    catalog.get("imagenet_v2(variant='mf')", data_root=str(tmp_path))


def test_imagenet_v2_rejects_class_index_1000(tmp_path):
  fx.write_image(str(tmp_path / "1000" / "a.jpeg"), 0)
  with pytest.raises(sources.LabelError, match=r"outside \[0, 1000\)"):
    natural.imagenet_v2(root=str(tmp_path))


def test_imagenet_r_subselects_200_logits(tmp_path):
  r = labels_lib.imagenet_r_wnids()
  idx = labels_lib.indices_of(r)
  # Folders: the 1st and the 200th ImageNet-R class.
  fx.write_wnid_tree(str(tmp_path / "imagenet-r"), [
      (r[0], "x1", 0), (r[0], "x2", 1), (r[199], "y1", 2), (r[199], "y2", 3)], ext=".jpg")
  es = catalog.get("imagenet_r", data_root=str(tmp_path))
  assert es.num_classes == 200 and len(es.class_names) == 200
  assert es.class_names[0] == labels_lib.imagenet_class_names()[idx[0]]
  assert [es.source[i]["label"] for i in range(4)] == [0, 0, 199, 199]
  # colour 0: right class; colour 1: an ImageNet class outside R (its logit is dropped,
  # the runner-up inside R decides); colour 2: right; colour 3: wrong class inside R.
  outside = next(i for i in range(1000) if i not in set(idx.tolist()))
  model = fx.ColourModel({0: idx[0], 1: (outside, idx[0]), 2: idx[199], 3: idx[5]})
  metrics, preds = fx.evaluate(es, model)
  assert metrics["top1"] == 3 / 4
  assert preds == {f"{r[0]}/x1.jpg": 0, f"{r[0]}/x2.jpg": 0, f"{r[199]}/y1.jpg": 199,
                   f"{r[199]}/y2.jpg": 5}


def test_imagenet_a_rejects_wnid_outside_its_200(tmp_path):
  fx.write_wnid_tree(str(tmp_path), [(W[0], "x", 0)])   # tench is not an ImageNet-A class
  with pytest.raises(sources.LabelError, match="outside this set's 200 classes"):
    natural.imagenet_a(root=str(tmp_path))


def test_class_folders_one_level_too_deep(tmp_path):
  a = labels_lib.imagenet_a_wnids()
  fx.write_wnid_tree(str(tmp_path / "imagenet-a"), [(a[0], "x", 0)])
  with pytest.raises(sources.LayoutError, match="one level deeper") as e:
    natural.imagenet_a(root=str(tmp_path))
  assert str(tmp_path / "imagenet-a" / a[0]) in str(e.value)


@pytest.fixture(scope="module")
def objectnet(tmp_path_factory):
  """ObjectNet's eval set over three mapped classes and one excluded folder."""
  tmp_path = tmp_path_factory.mktemp("objectnet")
  root = tmp_path / "objectnet-1.0"
  fx.write_objectnet(str(root), [
      ("alarm_clock", "a1", 0), ("alarm_clock", "a2", 1), ("banana", "b1", 2),
      ("banana", "b2", 3), ("bench", "c1", 4), ("air_freshener", "z1", 5),
      ("air_freshener", "z2", 6)])
  return catalog.get("objectnet", data_root=str(tmp_path))


# Colour -> ImageNet class predicted by a stand-in model.
OBJECTNET_MODEL = {
    0: 530,            # digital clock -> Alarm clock: right (many-to-one)
    1: 409,            # analog clock -> Alarm clock: right
    2: (999, 954),     # top class unmapped; banana wins among the mapped ones: right
    3: 703,            # park bench for a banana: wrong
    4: 703,            # park bench: right
    5: 954, 6: 954}    # excluded folder: never scored


def test_objectnet_excludes_unmapped_folders(objectnet):
  es = objectnet
  assert es.num_classes == 3 and es.class_names == ("Alarm clock", "Banana", "Bench")
  assert es.metadata["excluded_images"] == 2 and es.metadata["excluded_folders"] == 1
  assert len(es.source) == 5 and es.pre_transform is natural.crop_border


def test_objectnet_class_takes_the_max_over_its_imagenet_classes(objectnet):
  # Class 0 (alarm clock) takes the max over two ImageNet classes.
  np.testing.assert_array_equal(objectnet.project.index, [[409, 530], [954, -1], [703, -1]])


def test_objectnet_scores_many_to_one_by_hand(objectnet):
  es = objectnet
  model = fx.ColourModel(OBJECTNET_MODEL)
  metrics, preds = fx.evaluate(es, model)
  assert metrics == {"n": 5, "top1": 4 / 5, "top5": 1.0}
  assert preds["banana/b1.png"] == 1


def test_objectnet_border_crop_removes_the_frame(objectnet):
  es = objectnet
  model = fx.ColourModel(OBJECTNET_MODEL)
  # Without the 2-px crop the red border dominates every image (colour 0 ->
  # digital clock -> Alarm clock): only the two alarm clocks stay right.
  no_crop, _ = fx.evaluate(dataclasses.replace(es, pre_transform=None), model)
  assert no_crop["top1"] == 2 / 5


def test_crop_border_matches_pil_imageops():
  rng = np.random.default_rng(0)
  img = Image.fromarray(rng.integers(0, 256, (11, 17, 3), dtype=np.uint8))
  got = np.asarray(natural.crop_border(img))
  np.testing.assert_array_equal(got, np.asarray(ImageOps.crop(img, border=2)))
  assert got.shape == (7, 13, 3)


def test_objectnet_missing_mappings_say_where_to_get_them(tmp_path):
  fx.write_objectnet(str(tmp_path), [("banana", "b1", 0)], with_mappings=False)
  with pytest.raises(labels_lib.MetadataError, match="folder_to_objectnet_label.json.*objectnet.dev"):
    natural.objectnet(root=str(tmp_path))


VID = "val/ILSVRC2015_val_0000000{}/{:06d}.JPEG"


def _vid_fixture(root):
  a, b, c = (lambda f, v=v: VID.format(v, f) for v in (1, 2, 3))
  frames = {
      # set A: right anchor, one wrong neighbour among three
      a(10): ([4], 0), a(5): ([4], 0), a(15): ([4], 1), a(20): ([4], 0),
      # set B: a multi-label anchor (airplane and dog); dog is predicted
      b(30): ([0, 8], 2), b(31): ([8], 2),
      # set C: wrong anchor, right neighbour
      c(7): ([0], 2), c(8): ([0], 3),
      # labelled frame in no pm-k set
      c(50): ([0], 3),
  }
  pmsets = {a(10): [a(5), a(15), a(20)], b(30): [b(31)], c(7): [c(8)]}
  fx.write_vid(str(root), frames, pmsets)
  return frames


def test_vid_robust_pm0_pm10_multilabel(tmp_path):
  root = tmp_path / "imagenet_vid_ytbb_robust" / "imagenet-vid-robust"
  _vid_fixture(root)
  es = catalog.get("imagenet_vid_robust", data_root=str(tmp_path))
  assert es.num_classes == 30 and es.multilabel and es.class_names[8] == "dog"
  assert es.sequence_metrics == ("pm0", "pm10")
  rec = es.source[[es.source.example_id(i) for i in range(len(es.source))].index(
      VID.format(2, 30))]
  assert rec["labels"].nonzero()[0].tolist() == [0, 8] and rec["label"] == 0
  # colour 0: bird (ImageNet 11 -> VID 4); 1: a cat (not in VID) runner-up airliner
  # -> airplane; 2: a dog (152 -> VID 8); 3: airliner -> airplane.
  model = fx.ColourModel({0: 11, 1: (281, 404), 2: 152, 3: 404})
  metrics, preds = fx.evaluate(es, model)
  assert preds[VID.format(1, 15)] == 0 and preds[VID.format(2, 30)] == 8
  # Frames: right are a5, a10, a20, b30 (multi-label), b31, c8, c50; wrong a15, c7.
  assert metrics["n"] == 9 and metrics["top1"] == 7 / 9
  # Anchors: A right, B right (dog is one of its labels), C wrong -> pm0 = 2/3;
  # pm10: A has a wrong neighbour (a15), C's anchor is wrong -> only B.
  assert metrics["pm0"] == 2 / 3 and metrics["pm10"] == 1 / 3


def test_vid_robust_missing_metadata_names_the_file_and_source(tmp_path):
  _vid_fixture(tmp_path)
  os.remove(tmp_path / "metadata" / "pmsets.json")
  with pytest.raises(labels_lib.MetadataError, match="pmsets.json.*imagenet_vid_ytbb_robust"):
    natural.imagenet_vid_robust(root=str(tmp_path))


def test_vid_robust_missing_frames_are_counted(tmp_path):
  _vid_fixture(tmp_path)
  os.remove(tmp_path / VID.format(1, 20))
  with pytest.raises(sources.LayoutError, match="1 of 9 frames"):
    natural.imagenet_vid_robust(root=str(tmp_path))


def test_vid_robust_label_outside_30_classes(tmp_path):
  _vid_fixture(tmp_path)
  fx.write_json(str(tmp_path / "metadata" / "labels.json"),
                {VID.format(1, 10): [30], VID.format(1, 5): [4], VID.format(1, 15): [4],
                 VID.format(1, 20): [4], VID.format(2, 30): [0], VID.format(2, 31): [8],
                 VID.format(3, 7): [0], VID.format(3, 8): [0]})
  with pytest.raises(sources.LabelError, match=r"labels \[30\]"):
    natural.imagenet_vid_robust(root=str(tmp_path))


def _ytbb_fixture(root, **kw):
  frames = {
      "vidA_1000/frame-15.jpg": 0, "vidA_1000/frame-14.jpg": 0,   # bird, bird
      "vidA_1000/frame-16.jpg": 2, "vidA_1000/frame-26.jpg": 2,   # invalid / too far
      "vidB_2000/frame-15.jpg": 3, "vidB_2000/frame-13.jpg": 4,   # car; dog
      "vidC_3000/frame-15.jpg": 0, "vidD_4000/frame-15.jpg": 0,   # excluded anchors
      "vidE_5000/frame-15.jpg": 4,                                 # dog
      "vidF_6000/frame-15.jpg": 0,                                 # excluded
      "vidG_7000/frame-15.jpg": 0,                                 # bird for an airplane
  }
  anchors = [
      ("vidA_1000/frame-15.jpg", ["good"]),
      ("vidB_2000/frame-15.jpg", ["good"]),
      ("vidC_3000/frame-15.jpg", ["good", "unsure"]),
      ("vidD_4000/frame-15.jpg", ["good"]),
      ("vidE_5000/frame-15.jpg", ["good", "dog"]),
      ("vidF_6000/frame-15.jpg", ["bad"]),
      ("vidG_7000/frame-15.jpg", ["good"]),
  ]
  pairs = [
      ("vidA_1000/frame-15.jpg", "vidA_1000/frame-14.jpg", ["similar"]),
      ("vidA_1000/frame-15.jpg", "vidA_1000/frame-16.jpg", ["similar", "occlusion-increased"]),
      ("vidA_1000/frame-15.jpg", "vidA_1000/frame-26.jpg", ["similar"]),
      ("vidB_2000/frame-15.jpg", "vidB_2000/frame-13.jpg", ["similar", "correct"]),
      ("vidD_4000/frame-15.jpg", "vidD_4000/frame-16.jpg", ["bad-anchor"]),
  ]
  # CSV labels: bird; 22 (swapped to 23 = car); person; ...; airplane.
  csv_rows = [("vidA", 1000, 1), ("vidB", 2000, 22), ("vidC", 3000, 0), ("vidD", 4000, 0),
              ("vidE", 5000, 0), ("vidF", 6000, 0), ("vidG", 7000, 13)]
  fx.write_ytbb(str(root), frames, anchors, pairs, csv_rows, **kw)


def test_ytbb_robust_valid_anchors_swapped_labels_pm10(tmp_path):
  root = tmp_path / "imagenet_vid_ytbb_robust" / "ytbb-robust"
  _ytbb_fixture(root)
  es = catalog.get("ytbb_robust", data_root=str(tmp_path))
  assert es.num_classes == 24 and es.class_names[22] == "none" and es.multilabel
  # Only valid anchors (A, B, E, G) and valid neighbours within 10 frames are read.
  ids = sorted(es.source.example_id(i) for i in range(len(es.source)))
  assert ids == ["vidA_1000/frame-14.jpg", "vidA_1000/frame-15.jpg", "vidB_2000/frame-13.jpg",
                 "vidB_2000/frame-15.jpg", "vidE_5000/frame-15.jpg", "vidG_7000/frame-15.jpg"]
  sets = es.sequence_metric_fn.sets
  assert sets.labels["vidB_2000/frame-15.jpg"] == {23}          # 22 -> 23
  assert sets.labels["vidE_5000/frame-15.jpg"] == {0, 19}       # CSV person + reviewed dog
  # Classes without ImageNet counterparts project to -inf.
  proj = np.asarray(es.project(np.zeros((1, 1000), np.float32)))[0]
  assert np.isneginf(proj[[6, 8, 14, 18, 22]]).all() and np.isfinite(proj[[0, 1, 23]]).all()
  model = fx.ColourModel({0: 10, 2: 0, 3: 817, 4: 151})   # bird, person, sports car, dog
  metrics, preds = fx.evaluate(es, model)
  assert preds["vidB_2000/frame-15.jpg"] == 23 and preds["vidB_2000/frame-13.jpg"] == 19
  # Anchors: A bird right; B car right (only with the 22<->23 swap); E dog right;
  # G bird for airplane wrong -> pm0 3/4. Neighbours (judged by the anchor's labels):
  # A's frame-14 bird right; B's frame-13 dog wrong -> pm10 = {A, E} = 2/4.
  assert metrics["pm0"] == 3 / 4 and metrics["pm10"] == 2 / 4
  # Without the swap the CSV label would be 'none' (-inf): B's anchor could not be right.
  assert 22 not in sets.labels["vidB_2000/frame-15.jpg"]


def test_ytbb_missing_metadata_names_the_file_and_source(tmp_path):
  _ytbb_fixture(tmp_path, skip=("pmk_labels.json",))
  with pytest.raises(labels_lib.MetadataError,
                     match="pmk_labels.json.*modestyachts/imagenet-testbed"):
    natural.ytbb_robust(root=str(tmp_path))


def test_ytbb_metadata_elsewhere_needs_metadata_dir(tmp_path):
  _ytbb_fixture(tmp_path / "other", metadata_name="elsewhere")
  with pytest.raises(labels_lib.MetadataError, match="no metadata folder"):
    natural.ytbb_robust(root=str(tmp_path / "other"))
  es = natural.ytbb_robust(root=str(tmp_path / "other"),
                           metadata_dir=str(tmp_path / "other" / "elsewhere"))
  assert len(es.sequence_metric_fn.sets.anchors) == 4


def _val_tree(root):
  a = labels_lib.imagenet_a_wnids()
  r = labels_lib.imagenet_r_wnids()
  items = [(W[0], "ILSVRC2012_val_00000001", 0),      # tench: in R? no; in A? no
           (W[1], "ILSVRC2012_val_00000002", 1),      # goldfish: in R
           (a[0], "ILSVRC2012_val_00000003", 2),      # in A (and R)
           (W[409], "ILSVRC2012_val_00000004", 3),    # analog clock: ObjectNet
           (W[530], "ILSVRC2012_val_00000005", 4),    # digital clock: ObjectNet, A
           (W[152], "ILSVRC2012_val_00000006", 5),    # a dog: Vid, YTBB
           (W[817], "ILSVRC2012_val_00000007", 6)]    # sports car: YTBB
  assert W[1] in r and a[0] in r and W[0] not in r and W[0] not in a
  fx.write_wnid_tree(str(root), items)


def test_val_on_x_classes_controls(tmp_path):
  _val_tree(tmp_path / "imagenet" / "val")
  fx.write_objectnet(str(tmp_path / "objectnet-1.0"), [("banana", "b", 0)])
  _vid_fixture(tmp_path / "imagenet-vid-robust")
  _ytbb_fixture(tmp_path / "ytbb-robust")
  d = str(tmp_path)
  full = catalog.get("imagenet", data_root=d)
  assert len(full.source) == 7 and full.project is None and full.num_classes == 1000
  model = fx.ColourModel({0: 0, 1: 1, 2: 6, 3: 530, 4: 530, 5: 151, 6: 817})
  got = {}
  for name in ("r", "a", "objectnet", "vid_robust", "ytbb_robust"):
    es = catalog.get(f"imagenet_val_on_{name}_classes", data_root=d)
    metrics, preds = fx.evaluate(es, model)
    got[name] = (sorted(preds), [es.source[i]["label"] for i in range(len(es.source))],
                 metrics["top1"])
  a6 = labels_lib.imagenet_a_wnids()[0]
  assert got["r"] == ([f"{W[1]}/ILSVRC2012_val_00000002.JPEG",
                       f"{a6}/ILSVRC2012_val_00000003.JPEG"], [0, 3], 1.0)
  assert got["a"] == ([f"{a6}/ILSVRC2012_val_00000003.JPEG",
                       f"{W[530]}/ILSVRC2012_val_00000005.JPEG"], [0, 104], 1.0)
  # ObjectNet space: both clocks are class 0 (Alarm clock); predicting the digital
  # clock for the analog clock image is right there.
  assert got["objectnet"][1:] == ([0, 0], 1.0)
  assert got["vid_robust"][1:] == ([8], 1.0)              # the dog -> VID dog
  assert got["ytbb_robust"][1:] == ([0, 19, 23], 1.0)     # fixture person (0), dog, car


def test_flat_imagenet_val_with_labels_file(tmp_path):
  for i, colour in [(1, 0), (2, 1), (3, 2)]:
    fx.write_image(str(tmp_path / f"ILSVRC2012_val_{i:08d}.JPEG"), colour)
  labels_file = tmp_path / "labels.txt"
  labels_file.write_text(f"{W[7]}\n{W[3]}\n{W[999]}\n")
  es = natural.imagenet(root=str(tmp_path), labels_file=str(labels_file))
  assert [(es.source[i]["id"], es.source[i]["label"]) for i in range(3)] == [
      ("ILSVRC2012_val_00000001.JPEG", 7), ("ILSVRC2012_val_00000002.JPEG", 3),
      ("ILSVRC2012_val_00000003.JPEG", 999)]
  # The default labels come from TFDS's validation_labels.txt (line 1: n01751748).
  es = natural.imagenet(root=str(tmp_path))
  assert es.source[0]["label"] == labels_lib.wnid_to_index()["n01751748"]
  bad = tmp_path / "gt.txt"
  bad.write_text("490\n361\n171\n")
  with pytest.raises(labels_lib.MetadataError, match="meta.mat order"):
    natural.imagenet(root=str(tmp_path), labels_file=str(bad))


def test_imagenet_v2_stray_folder_is_named(tmp_path):
  root = tmp_path / "imagenetv2-matched-frequency-format-val"
  for folder in ("0", "1", "2", "3", "tmp_backup"):
    fx.write_image(str(root / folder / "0abc.jpeg"), 0)
  with pytest.raises(sources.LayoutError, match=r"1 other entries, e\.g\. \['tmp_backup'\]") \
      as e:
    catalog.get("imagenet_v2", data_root=str(tmp_path))
  assert "'0'" not in str(e.value)   # not the valid folders as the examples


@pytest.mark.parametrize("spec,param,set_name", [
    ("imagenet_val_on_vid_robust_classes", "vid_root=", "Vid-Robust"),
    ("imagenet_val_on_objectnet_classes", "objectnet_root=", "ObjectNet"),
    ("imagenet_val_on_ytbb_robust_classes", "ytbb_root=", "YTBB"),
])
def test_val_controls_name_the_missing_root(spec, param, set_name, tmp_path):
  with pytest.raises(sources.DataNotFound) as e:
    catalog.get(f"{spec}(root={str(tmp_path)!r})", data_root=str(tmp_path))
  msg = str(e.value)
  assert msg.startswith(spec) and f"pass {param}" in msg and set_name in msg, msg
  assert "pass root=" not in msg, msg
  if set_name == "YTBB":
    assert "Vid-Robust" not in msg and "objectnet" not in msg.lower(), msg


def test_tfds_dir_without_the_dataset_lists_the_places_searched(tmp_path):
  with pytest.raises(sources.DataNotFound) as e:
    catalog.get("imagenet_v2", data_root=str(tmp_path / "folders"),
                tfds_dir=str(tmp_path / "tfds"))
  msg = str(e.value)
  assert "random-access" not in msg and "convert" not in msg, msg
  # Both places: the folders under data_root and TFDS's version folders.
  assert str(tmp_path / "folders" / "imagenetv2-matched-frequency-format-val") in msg, msg
  assert str(tmp_path / "tfds" / "imagenet_v2" / "matched-frequency" / "*" /
             "dataset_info.json") in msg, msg
  assert "not found" in msg, msg
