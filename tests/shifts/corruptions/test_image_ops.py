"""jaxbench.shifts.corruptions.image_ops: the operator plans against the references' rules."""
import pytest

from jaxbench.shifts import corruptions as C
from jaxbench.shifts.corruptions import image_ops


@pytest.mark.parametrize("res, n", (("imagenet", 224), ("cifar", 32)))
def test_zoom_plans_keep_the_top_rows(res, n):
  # create_c trims (size - n) // 2 rows after zooming; imagecorruptions keeps
  # the first n. Both agree for every table entry (size - n < 2).
  for zooms in C.PARAMS[res]["zoom_blur"]:
    assert (image_ops.zoom_plan(n, zooms)[:, 2] == 0).all()
