"""The compiled step across passes: one jitted step reused, phases logged."""
import pytest

from jaxbench import suites
from jaxbench.engine import step as step_lib
from tests.engine.helpers import _config, _write_folder


@pytest.fixture(scope="module")
def two_pass_run(tiny_clip, tmp_path_factory):
  """Runs two image-folder passes of the same shapes once: (rows, steps, log text)."""
  import io
  import logging
  model_dir, _ = tiny_clip
  tmp = tmp_path_factory.mktemp("two_pass")
  a = _write_folder(str(tmp / "a"), n_per_class=3)
  b = _write_folder(str(tmp / "b"), n_per_class=2)
  cfg = _config(model_dir, a, datasets=(f"image_folder(root={a!r})",
                                        f"image_folder(root={b!r})"), batch_size=4)
  step_lib._STEPS.clear()
  root, log = logging.getLogger(), io.StringIO()
  handler, level = logging.StreamHandler(log), root.level
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  try:
    rows = suites.run(cfg, str(tmp / "wd"))
  finally:
    root.removeHandler(handler)
    root.setLevel(level)
  return rows, dict(step_lib._STEPS), log.getvalue()


def test_second_pass_reuses_the_compiled_step(two_pass_run):
  rows, steps, _ = two_pass_run
  assert len({r["dataset"] for r in rows}) == 2
  # One jitted step for both passes (new head, same shapes), compiled once.
  assert len(steps) == 1
  (step,) = steps.values()
  assert step._cache_size() == 1


def test_phases_before_the_first_batch_are_logged(two_pass_run):
  import re
  _, _, text = two_pass_run
  assert "pass 1/2" in text and "pass 2/2" in text
  assert "compiled the step and ran the first batch" in text
  assert "ran the first batch (step already compiled)" in text
  assert re.search(r"loading model .*: done in [\d.]+ s", text)
  assert "building the zero-shot head" in text and "prompts/s" in text
