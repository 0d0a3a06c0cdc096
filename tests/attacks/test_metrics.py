"""Per-attack metrics from per-example outputs, against a hand computation."""
import numpy as np
import pytest

from jaxbench.attacks import metrics

OUT = {
    "mask": np.array([1, 1, 1, 1, 0], bool),
    "clean_correct": np.array([1, 1, 0, 1, 1], bool),
    "adv_correct": np.array([0, 1, 0, 0, 0], bool),
    "success": np.array([1, 0, 0, 1, 1], bool),
    "linf": np.array([0.1, 0.0, 0.0, 0.3, 9.0]),
    "l2": np.array([1.0, 0.0, 0.0, 2.0, 9.0]),
    "pixel_linf": np.array([0.1, 0.0, 0.0, 0.3, 9.0]),
    "queries": np.array([10, 20, 1, 30, 99]),
    "in_ball": np.array([1, 1, 1, 0, 0], bool),
    "in_bounds": np.ones(5, bool),
    "min_eps": np.array([0.002, np.inf, 0.0, 0.004, 0.001]),
    "robust_stage": np.array([[1, 0], [1, 1], [0, 0], [0, 0], [1, 1]], bool),
}


@pytest.fixture(scope="module")
def summary():
  return metrics.summarize(OUT)


def test_padding_is_not_counted(summary):
  assert summary["n"] == 4


def test_accuracies(summary):
  assert summary["clean_acc"] == 0.75 and summary["robust_acc"] == 0.25


def test_success_rate_over_clean_correct(summary):
  assert summary["success_rate"] == pytest.approx(2 / 3)


def test_norms_over_successful_examples(summary):
  assert summary["mean_linf"] == pytest.approx(0.2) and summary["median_l2"] == pytest.approx(1.5)


def test_queries_over_clean_correct(summary):
  assert summary["mean_queries"] == pytest.approx(20.0)


def test_median_min_eps(summary):
  assert summary["median_min_eps"] == pytest.approx(0.003)     # (0, .002, .004, inf)


def test_stage_robust_accuracy(summary):
  assert summary["stage_robust_acc"] == [0.5, 0.25]


def test_outside_ball_count(summary):
  assert summary["outside_ball"] == 1
