"""The Hershey font: OpenCV 4's putText strokes and getTextSize metrics, reproduced."""
import json
import os

import numpy as np

from jaxbench.typographic import hershey


def _cv4_reference():
  d = np.load(os.path.join(os.path.dirname(__file__), "typographic_cv4_reference.npz"))
  return json.loads(str(d["cases"])), d["masks"], d["offsets"], str(d["opencv"])


def test_hershey_text_matches_opencv4_pixel_for_pixel():
  """RoZ drew with OpenCV 4; its putText output (recorded with OpenCV 4.10 by
  make_typographic_fixtures.py) is reproduced exactly, sizes included."""
  cases, masks, offsets, version = _cv4_reference()
  assert version.startswith("4.") and len(cases) == 96
  for i, c in enumerate(cases):
    assert list(hershey.text_size(c["word"], "hershey_duplex", c["scale"], c["thickness"])) == \
        c["size"], c
    img = np.zeros(c["shape"], np.uint8)
    hershey.put_text(img, c["word"], tuple(c["org"]), "hershey_duplex", c["scale"], 255,
                  c["thickness"])
    ref = np.unpackbits(masks[offsets[i]:offsets[i + 1]])[:img.size].reshape(img.shape)
    assert np.array_equal(img > 0, ref > 0), (c["word"], c["scale"], c["thickness"])


def test_roz_box_sizes():
  # OpenCV 4.x getTextSize(..., FONT_HERSHEY_DUPLEX, 0.8, thickness=2): 'hen' 48x18 and
  # 'centipede' 124x18, baseline 8 (protocol.md's 45x22 / 120x22 are OpenCV 5's).
  assert hershey.text_size("hen", "hershey_duplex", 0.8, 2) == (48, 18, 8)
  assert hershey.text_size("centipede", "hershey_duplex", 0.8, 2) == (124, 18, 8)
