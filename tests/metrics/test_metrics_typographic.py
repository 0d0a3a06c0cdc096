"""Typographic metrics: accuracy and attack success rate against hand counts."""
import json

import numpy as np
import pytest

from jaxbench.metrics import typographic as tm


def test_metrics_against_hand_counts():
  labels = np.array([0, 1, 2, 3, 4, 5, 6, 7])
  written = np.array([9, 9, 8, 8, -1, -1, 6, 7])
  variants = np.array(["a", "a", "a", "a", "w", "w", "t", "t"])
  preds = np.array([0, 9, 8, 5, 4, 9, 6, 0])
  s = tm.summarize(preds, labels, written, variants)
  assert s["top1"] == 3 / 8 and s["n"] == 8
  # Success over the 4 examples whose text names another class (not the
  # random words 4, 5 nor the true class written on 6, 7): hits at 1, 2 -> 2/4.
  assert s["success_rate"] == 2 / 4 and s["n_written"] == 4
  assert s["by_variant"]["a"] == {"top1": 0.25, "success_rate": 0.5, "n": 4, "n_written": 4}
  assert s["by_variant"]["w"]["top1"] == 0.5 and np.isnan(s["by_variant"]["w"]["success_rate"])
  assert s["by_variant"]["t"]["top1"] == 0.5 and s["by_variant"]["t"]["n_written"] == 0
  assert np.isnan(s["by_variant"]["t"]["success_rate"])
  logits = np.eye(10)[preds] * 3.0
  assert json.dumps(tm.summarize(logits, labels, written, variants), sort_keys=True) == \
      json.dumps(s, sort_keys=True)   # NaN-safe comparison
  flat = tm.flat_metrics(s)
  assert flat["top1/a"] == 0.25 and flat["success_rate/a"] == 0.5 and len(flat) == 8
  assert tm.accuracy(preds, labels) == 3 / 8
  assert tm.attack_success_rate(preds, written) == 3 / 6      # true-class texts kept
  assert tm.attack_success_rate(preds, written, labels) == 2 / 4
  with pytest.raises(ValueError, match="differ in shape"):
    tm.accuracy(preds[:3], labels)
  with pytest.raises(KeyError, match="not in the typographic manifest"):
    tm.from_ids(["nope"], [0], {})
