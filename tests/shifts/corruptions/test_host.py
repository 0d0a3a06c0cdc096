"""jaxbench.shifts.corruptions.host: the host kernels against the reference corruption code.

The reference's NumPy draws are replayed (see corruption_replay.py) and fed to our kernels.
"""
import numpy as np
import pytest

import corruption_replay as R
from jaxbench.shifts import corruptions as C


@pytest.mark.parametrize("res", C.RESOLUTIONS)
@pytest.mark.parametrize("name", ("motion_blur", "snow", "jpeg_compression"))
def test_host_corruption_matches_reference(name, res):
  images = R.images(res)
  for severity in range(1, 6):
    p = C.table(name, severity, res)
    outs = []
    for img, seed in zip(images, R.seeds(res, name, severity)):
      np.random.seed(seed)
      if name == "motion_blur":
        out = C.motion_blur_np(img, p[0], p[1], np.random.uniform(-45, 45))
      elif name == "snow":
        layer = np.random.normal(size=img.shape[:2], loc=p[0], scale=p[1])
        out = C.snow_np(img, p, layer, np.random.uniform(-135, -45))
      else:
        out = C.jpeg_np(img, p)
      outs.append(np.asarray(out, np.float64))
    mad = np.abs(R.crop(res, np.stack(outs)) - R.reference(res, name, severity)).mean()
    assert mad <= 1.0, f"{res} {name} severity {severity}: {mad:.3f}/255"


@pytest.mark.parametrize("res", C.RESOLUTIONS)
def test_water_spatter_matches_reference(res):
  images = R.images(res)
  for severity in range(1, 6):
    if C.is_device("spatter", severity, res):
      continue   # the mud severities: test_device.py
    p = C.table("spatter", severity, res)
    outs = []
    for img, seed in zip(images, R.seeds(res, "spatter", severity)):
      np.random.seed(seed)
      liquid = np.random.normal(size=img.shape[:2], loc=p[0], scale=p[1])
      outs.append(C.spatter_water_np(img, p, liquid))
    ours = np.stack(outs)
    mad = np.abs(R.crop(res, ours) - R.reference(res, "spatter", severity)).mean()
    assert mad <= 1.0, f"{res} spatter severity {severity}: {mad:.3f}/255"


@pytest.mark.parametrize("res", C.RESOLUTIONS)
def test_snow_crops_the_layer_before_the_blur_like_create_c(res):
  # Reference: the package's snow with create_c's clipped_zoom (trim to the
  # image size, then blur), same NumPy draws. Whole images, borders included:
  # blurring the larger layer first put up to 170/255 of extra snow there.
  import make_corruption_fixtures as M
  from PIL import Image
  images = R.images(res)
  ref = R.package_reference(res)
  for severity in range(1, 6):
    p = C.table("snow", severity, res)
    for i, img in enumerate(images):
      np.random.seed(100 * severity + i)
      want = M.snow_create_c(ref, Image.fromarray(img), severity)
      np.random.seed(100 * severity + i)
      layer = np.random.normal(size=img.shape[:2], loc=p[0], scale=p[1])
      got = C.snow_np(img, p, layer, np.random.uniform(-135, -45))
      np.testing.assert_allclose(got, want, atol=1e-3,
                                 err_msg=f"{res} snow severity {severity}")
