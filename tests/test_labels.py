"""The ImageNet label space, the A/R subsets, metadata mappings and ``labels.project``."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import labels as labels_lib

from tests.data import natural_fixtures as fx

# hendrycks/natural-adv-examples eval.py: the keys of thousand_k_to_200 with a value != -1.
HENDRYCKS_A = [
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89, 90, 94, 96,
    97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234, 235, 254,
    277, 283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310, 311, 313, 314, 315, 317, 319,
    323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386, 397, 400, 401, 402,
    404, 407, 411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470, 472,
    483, 486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543, 549, 552, 557, 561, 562, 569,
    572, 573, 575, 579, 589, 606, 607, 609, 614, 626, 627, 640, 641, 642, 643, 658, 668, 677,
    682, 684, 687, 701, 704, 719, 736, 746, 749, 752, 758, 763, 765, 768, 773, 774, 776, 779,
    780, 786, 792, 797, 802, 803, 804, 813, 815, 820, 823, 831, 833, 835, 839, 845, 847, 850,
    859, 862, 870, 879, 880, 888, 890, 897, 900, 907, 913, 924, 932, 933, 934, 937, 943, 945,
    947, 951, 954, 956, 957, 959, 971, 972, 980, 981, 984, 986, 987, 988]
# hendrycks/imagenet-r eval.py: the imagenet_r_indices comment.
HENDRYCKS_R = [
    1, 2, 4, 6, 8, 9, 11, 13, 22, 23, 26, 29, 31, 39, 47, 63, 71, 76, 79, 84, 90, 94, 96, 97, 99,
    100, 105, 107, 113, 122, 125, 130, 132, 144, 145, 147, 148, 150, 151, 155, 160, 161, 162,
    163, 171, 172, 178, 187, 195, 199, 203, 207, 208, 219, 231, 232, 234, 235, 242, 245, 247,
    250, 251, 254, 259, 260, 263, 265, 267, 269, 276, 277, 281, 288, 289, 291, 292, 293, 296,
    299, 301, 308, 309, 310, 311, 314, 315, 319, 323, 327, 330, 334, 335, 337, 338, 340, 341,
    344, 347, 353, 355, 361, 362, 365, 366, 367, 368, 372, 388, 390, 393, 397, 401, 407, 413,
    414, 425, 428, 430, 435, 437, 441, 447, 448, 457, 462, 463, 469, 470, 471, 472, 476, 483,
    487, 515, 546, 555, 558, 570, 579, 583, 587, 593, 594, 596, 609, 613, 617, 621, 629, 637,
    657, 658, 701, 717, 724, 763, 768, 774, 776, 779, 780, 787, 805, 812, 815, 820, 824, 833,
    847, 852, 866, 875, 883, 889, 895, 907, 928, 931, 932, 933, 934, 936, 937, 943, 945, 947,
    948, 949, 951, 953, 954, 957, 963, 965, 967, 980, 981, 983, 988]


def test_wnids_are_tfds_sorted_labels():
  import tensorflow_datasets as tfds
  path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")
  with open(path) as f:
    tfds_wnids = [line.strip() for line in f if line.strip()]
  wnids = labels_lib.imagenet_wnids()
  assert list(wnids) == tfds_wnids == sorted(wnids) and wnids[0] == "n01440764"


@pytest.mark.parametrize("name, reference, first_name", [
    ("a", HENDRYCKS_A, "stingray"), ("r", HENDRYCKS_R, "goldfish")])
def test_subset_matches_hendrycks(name, reference, first_name):
  assert len(reference) == 200 == len(set(reference))
  wnids = getattr(labels_lib, f"imagenet_{name}_wnids")()
  assert list(wnids) == sorted(wnids)   # sorted wnids = ImageFolder's 0..199 targets
  np.testing.assert_array_equal(labels_lib.indices_of(wnids), reference)
  proj = getattr(labels_lib, f"imagenet_{name}_projection")()
  assert proj.is_subset and proj.num_classes == 200
  assert labels_lib.imagenet_class_names()[proj.index[0, 0]] == first_name
  target = proj.target_of()
  assert target[reference[5]] == 5 and (target >= 0).sum() == 200


def _reference_projection(logits, groups):
  """wise-ft's project_logits loop (max over each group), -inf for empty groups."""
  out = np.full((logits.shape[0], len(groups)), -np.inf, np.float32)
  for k, g in enumerate(groups):
    if g:
      out[:, k] = logits[:, g].max(axis=1)
  return out


LOGITS = np.array([[0., 1., 2., 3., 4., 5.], [5., -1., 0., 9., -2., 1.]], np.float32)


def _groups():
  return labels_lib.Projection.groups([[4, 1], [2], []], num_source=6)


def test_project_max_pools_groups_and_marks_empty_ones():
  np.testing.assert_array_equal(np.asarray(labels_lib.project(jnp.asarray(LOGITS), _groups())),
                                [[4., 2., -np.inf], [-1., 0., -np.inf]])


def test_subset_projection_selects_columns():
  sub = labels_lib.Projection.subset([5, 0], num_source=6)
  np.testing.assert_array_equal(np.asarray(sub(jnp.asarray(LOGITS))), [[5., 0.], [1., 5.]])


def test_projection_keeps_bfloat16_under_jit():
  # bfloat16 logits stay bfloat16; the function jits with the table as a constant.
  out = jax.jit(_groups())(jnp.asarray(LOGITS, jnp.bfloat16))
  assert out.dtype == jnp.bfloat16 and np.isneginf(np.asarray(out, np.float32)[:, 2]).all()


def test_project_matches_wise_ft_on_random_groups():
  rng = np.random.default_rng(0)
  big = rng.normal(size=(5, 1000)).astype(np.float32)
  groups = [list(rng.choice(1000, size=n, replace=False)) for n in (1, 3, 7, 0, 2)]
  np.testing.assert_array_equal(
      np.asarray(jax.jit(labels_lib.project, static_argnums=1)(
          jnp.asarray(big), labels_lib.Projection.groups(groups))),
      _reference_projection(big, groups))


def test_projection_refuses_logits_of_another_width():
  with pytest.raises(ValueError, match="expects 6 logits"):
    _groups()(jnp.zeros((2, 5)))


def test_subset_refuses_an_index_outside_the_source():
  with pytest.raises(ValueError, match="outside"):
    labels_lib.Projection.subset([6], num_source=6)


def test_target_of_maps_source_classes_to_groups():
  np.testing.assert_array_equal(_groups().target_of(), [-1, 0, 1, -1, 0, -1])


def test_target_of_refuses_a_class_in_two_groups():
  with pytest.raises(ValueError, match="maps to both"):
    labels_lib.Projection.groups([[1], [1, 2]], num_source=6).target_of()


def test_objectnet_mapping_from_official_files(tmp_path):
  fx.write_objectnet(str(tmp_path), [])
  m = labels_lib.objectnet_mapping(str(tmp_path / "mappings"))
  assert m.keys == ("alarm_clock", "banana", "bench")
  assert m.class_names == ("Alarm clock", "Banana", "Bench")
  np.testing.assert_array_equal(m.projection.index, [[409, 530], [954, -1], [703, -1]])
  # An ImageNet name that is not unique in imagenet_to_label_2012_v2 cannot be resolved.
  names = (tmp_path / "mappings" / "imagenet_to_label_2012_v2").read_text().splitlines()
  names[0] = "banana"
  (tmp_path / "mappings" / "imagenet_to_label_2012_v2").write_text("\n".join(names))
  with pytest.raises(labels_lib.MetadataError, match="'banana'.*occurs 2 times"):
    labels_lib.objectnet_mapping(str(tmp_path / "mappings"))
  os.remove(tmp_path / "mappings" / "pytorch_to_imagenet_2012_id.json")
  with pytest.raises(labels_lib.MetadataError, match="pytorch_to_imagenet_2012_id.json"):
    labels_lib.objectnet_mapping(str(tmp_path / "mappings"))


def test_vid_mapping(tmp_path):
  fx.write_vid(str(tmp_path / "vid"), {}, {})
  vid = labels_lib.vid_mapping(str(tmp_path / "vid"))
  assert vid.class_names[4] == "bird" and vid.projection.num_classes == 30
  assert sorted(vid.projection.index[4][vid.projection.index[4] >= 0]) == [10, 11, 12]


def test_ytbb_mapping(tmp_path):
  fx.write_ytbb(str(tmp_path / "y"), {}, [], [], [])
  ytbb = labels_lib.ytbb_mapping(str(tmp_path / "y" / "ytbb-robust_metadata"))
  assert ytbb.class_names[23] == "car" and ytbb.projection.num_classes == 24
  assert (ytbb.projection.index[22] == -1).all()


def test_ytbb_class_index_must_be_contiguous(tmp_path):
  fx.write_ytbb(str(tmp_path / "y"), {}, [], [], [])
  with open(tmp_path / "y" / "ytbb-robust_metadata" / "ytbb_class_index.json", "w") as f:
    json.dump({"0": "person", "2": "boat"}, f)
  with pytest.raises(labels_lib.MetadataError, match="keys must be 0..1"):
    labels_lib.ytbb_mapping(str(tmp_path / "y" / "ytbb-robust_metadata"))
