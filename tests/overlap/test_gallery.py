"""The duplicate gallery (jaxbench/overlap/gallery.py): one self-contained, escaped HTML file."""
import math

import numpy as np

from jaxbench.overlap import analysis, gallery


def test_gallery_is_self_contained_with_escaped_ids(tmp_path):
  img = np.full((20, 30, 3), 128, np.uint8)
  evil = '<script>alert(1)</script>'
  pairs = [analysis.Pair("q/" + evil, "c/1", 0.97, "embedding", rank=0),
           analysis.Pair("q/2", "c/missing", 0.93, "phash", distance=2)]
  path = gallery.write(str(tmp_path / "g" / "gallery.html"), pairs,
                       {"q/" + evil: img, "q/2": img}, {"c/1": img},
                       title="t", summary={"rate": 0.5})
  html = open(path, encoding="utf-8").read()
  assert "<script>" not in html and "&lt;script&gt;" in html
  assert html.count("data:image/jpeg;base64,") == 3
  assert "image not available" in html and "phash distance 2" in html
  assert math.isclose(float(html.split("cosine ")[1].split(" ")[0]), 0.97)
