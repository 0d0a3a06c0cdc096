"""The rows of a pass (:mod:`jaxbench.engine.rows`, made by the transform's ``metrics``)."""
import numpy as np
import pytest

from jaxbench import suites
from tests.engine.helpers import _config, _outputs, _write_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(str(tmp_path_factory.mktemp("data")),
                       bad=("dog/zz_corrupt.JPEG",))


def test_attack_pass_rows_from_reevaluated_outputs(tiny_clip, folder, tmp_path):
  """An attack pass: robust accuracy = correct before AND after (re-evaluated), every
  returned image inside its ball, eps measured in pixel space, padding not attacked."""
  model_dir, _ = tiny_clip
  rows = suites.run(_config(model_dir, folder, batch_size=7, suite="auto",
                            transforms=("attack:fgsm(eps=2/255)",)), str(tmp_path))
  by = {r["metric"]: r for r in rows}
  out = _outputs(str(tmp_path))
  valid = ~out["bad"]
  clean, adv = out["clean_correct1"][valid], out["correct1"][valid]
  assert by["clean_acc"]["value"] == pytest.approx(clean.mean())
  assert by["robust_acc"]["value"] == pytest.approx((clean & adv).mean())
  assert by["robust_acc"]["suite"] == "adv" and by["robust_acc"]["n"] == 18
  assert out["atk_in_ball"][valid].all() and out["atk_in_bounds"][valid].all()
  assert np.all(out["atk_pixel_linf"][valid] <= 2 / 255 + 1e-6)
  assert by["robust_acc"]["details"]["checks"]["outside_ball"] == 0
  assert by["mean_queries"]["value"] == 1.0
