"""pm-k scoring and the Vid/YTBB pm-k set rules, against hand-worked examples."""
import pytest

from jaxbench.metrics import pmk

F = "val/v1/{:06d}.JPEG"


@pytest.fixture
def vid_sets():
  """Vid pm-k sets: anchor 10 with neighbours 1 and 5 frames away, two lone anchors."""
  labels = {F.format(i): [1] for i in (10, 11, 15, 30, 40)}
  labels[F.format(40)] = [2, 3]                      # a multi-label anchor
  return pmk.vid_pmsets(labels, {F.format(10): [F.format(11), F.format(15)],
                                 F.format(30): [],      # no neighbours
                                 F.format(40): []})


# Predictions with the frame 5 away from anchor 10 wrong.
PREDS = {F.format(10): 1, F.format(11): 1, F.format(15): 0, F.format(30): 1, F.format(40): 3}


def test_vid_neighbours_carry_their_frame_offsets(vid_sets):
  assert vid_sets.neighbours[F.format(10)] == ((1, F.format(11)), (5, F.format(15)))


def test_pmk_counts_a_wrong_frame_only_within_k(vid_sets):
  out = pmk.score(vid_sets, dict(PREDS), ks=(0, 1, 10))
  # pm0: all three anchors right; pm1: the wrong frame is 5 away -> all right;
  # pm10: anchor 10 loses its set.
  assert out == {"pm0": 1.0, "pm1": 1.0, "pm10": 2 / 3, "n": 3, "missing_anchors": 0,
                 "missing_frames": 0}


def _preds_with_missing():
  preds = dict(PREDS)
  del preds[F.format(11)], preds[F.format(30)]
  return preds


def test_missing_neighbour_is_wrong_and_missing_anchor_unscored(vid_sets):
  out = pmk.score(vid_sets, _preds_with_missing(), ks=(0, 1))
  assert out == {"pm0": 1.0, "pm1": 0.5, "n": 2, "missing_anchors": 1, "missing_frames": 1}


def test_pmk_metric_scores_ids_and_predictions(vid_sets):
  preds = _preds_with_missing()
  metric = pmk.PmkMetric(vid_sets)
  ids = list(preds)
  assert metric(ids, [preds[i] for i in ids], None) == {"pm0": 1.0, "pm10": 0.5}


def test_pmk_metric_refuses_mismatched_lengths(vid_sets):
  metric = pmk.PmkMetric(vid_sets)
  ids = list(_preds_with_missing())
  with pytest.raises(ValueError, match="2 ids but 1 predictions"):
    metric(ids[:2], [0])


def test_vid_pmsets_refuses_an_anchor_without_labels():
  with pytest.raises(ValueError, match="without labels"):
    pmk.vid_pmsets({}, {F.format(1): []})


def _doc(names, rows):
  return {"labels": names, "annotations": [
      {"key": k, "labels": [names.index(n) for n in ns]} for k, ns in rows]}


def test_ytbb_rules():
  anchor_names = ["good", "unsure", "bad", "person", "dog", "car"]
  anchors = _doc(anchor_names, [
      ("/x/ytbb_videos/a_100/frame-5.jpg", ["bad"]),
      ("/y/a_100/frame-5.jpg", ["good", "dog"]),       # later annotation wins; key = last 2 parts
      ("b_200/frame-3.jpg", ["good"]),
      ("c_300/frame-3.jpg", ["good"]),                  # bad-anchor in the pair review
      ("d_400/frame-3.jpg", ["good", "unsure"])])
  pair_names = ["similar", "dissimilar", "blur-increase", "bad-anchor"]
  pairs = _doc(pair_names, [
      ("a_100/frame-5.jpg,a_100/frame-6.jpg", ["similar"]),
      ("a_100/frame-5.jpg,a_100/frame-1.jpg", ["similar", "blur-increase"]),
      ("a_100/frame-5.jpg,a_100/frame-16.jpg", ["similar"]),   # 11 frames away
      ("b_200/frame-3.jpg,b_200/frame-2.jpg", ["dissimilar"]),
      ("c_300/frame-3.jpg,c_300/frame-4.jpg", ["similar", "bad-anchor"])])
  csv_rows = [{"ytid": "a", "time_ms": "100", "label": "0"},
              {"ytid": "b", "time_ms": "200", "label": "22"},
              {"ytid": "c", "time_ms": "300", "label": "0"},
              {"ytid": "d", "time_ms": "400", "label": "0"}]
  classes = ["person"] + [f"c{i}" for i in range(1, 19)] + ["dog", "c20", "c21", "none", "car"]
  sets = pmk.ytbb_pmsets(anchors, pairs, csv_rows, classes)
  assert sets.anchors == ("a_100/frame-5.jpg", "b_200/frame-3.jpg")
  assert sets.labels["a_100/frame-5.jpg"] == {0, 19}      # CSV person + reviewed dog
  assert sets.labels["b_200/frame-3.jpg"] == {23}         # CSV 22 read as 23
  assert sets.neighbours == {"a_100/frame-5.jpg": ((1, "a_100/frame-6.jpg"),),
                             "b_200/frame-3.jpg": ()}
  # The neighbour is judged against the anchor's labels.
  assert sets.labels_for("a_100/frame-5.jpg", "a_100/frame-6.jpg") == {0, 19}
  out = pmk.score(sets, {"a_100/frame-5.jpg": 19, "a_100/frame-6.jpg": 0,
                         "b_200/frame-3.jpg": 22})
  assert out["pm0"] == 0.5 and out["pm10"] == 0.5
  with pytest.raises(ValueError, match="no row in ytbb_robustness"):
    pmk.ytbb_pmsets(anchors, pairs, csv_rows[1:], classes)
  with pytest.raises(ValueError, match="anchor_labels.json: expected"):
    pmk.ytbb_pmsets({"annotations": []}, pairs, csv_rows, classes)
