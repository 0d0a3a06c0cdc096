"""jaxbench.shifts.corruptions.frost (and the frost host kernel): pictures, scaling, blend."""
import os

import numpy as np
import pytest

import corruption_replay as R
from jaxbench import shifts
from jaxbench.shifts import corruptions as C


def _write_textures(directory, sizes):
  import cv2
  rng = np.random.default_rng(0)
  textures = []
  for name, (h, w) in zip(C.FROST_FILES, sizes):
    tex = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    path = os.path.join(directory, name)
    cv2.imwrite(path, tex[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    textures.append(cv2.imread(path)[..., ::-1])   # what a reader gets back (RGB)
  return textures


SIZES = [(300, 420), (260, 300), (280, 280), (250, 330), (320, 240), (300, 300)]


@pytest.mark.parametrize("severity", (1, 5))
def test_frost_blends_a_texture_crop(tmp_path, severity):
  textures = _write_textures(str(tmp_path), SIZES)
  img = R.FIX["img224"]
  # The corruption itself, without the official files' JPEG-85 save.
  shift = shifts.get(f"imagenet_c(corruption='frost', severity={severity}, "
                     f"frost_dir={str(tmp_path)!r}, jpeg_quality=None)")
  assert shift.kind == "host"
  c0, c1 = C.table("frost", severity)
  out = shift.host_fn(img, np.random.default_rng(severity)).astype(np.float64)
  # Solve for the texture crop the output used; it must be one crop of one
  # of the first five pictures (create_c draws randint(5)).
  crop = (out - c0 * img) / c1
  found = False
  for tex in textures[:5]:
    for top in range(tex.shape[0] - 224):
      row = tex[top, :, :].astype(np.float64)
      for left in np.flatnonzero(np.abs(row[:, 0] - crop[0, 0, 0]) < 1.5 / c1):
        cand = tex[top:top + 224, left:left + 224]
        if cand.shape[:2] != (224, 224):
          continue
        expected = np.uint8(np.clip(c0 * img + c1 * cand.astype(np.float64), 0, 255))
        if np.array_equal(expected, out.astype(np.uint8)):
          found = True
          break
      if found:
        break
    if found:
      break
  assert found, f"frost severity {severity}: output is not c0*x + c1*crop"


def test_cifar_frost_textures_are_scaled_by_a_fifth(tmp_path):
  # CIFAR textures are scaled by 0.2 first (make_cifar_c.py).
  _write_textures(str(tmp_path), SIZES)
  tex = C.frost_texture(str(tmp_path), 0, "cifar", (32, 32))
  assert tex.shape[:2] == (60, 84)


def test_frost_without_textures_names_where_to_get_them(tmp_path, monkeypatch):
  monkeypatch.setenv(C.FROST_ENV, str(tmp_path))
  monkeypatch.setattr(os.path, "expanduser", lambda p: str(tmp_path / "home") if p == "~" else p)
  import importlib.util
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError) as e:
    shifts.get(f"imagenet_c(corruption='frost', severity=1, frost_dir={str(tmp_path)!r})")
  msg = str(e.value)
  assert "frost1.png" in msg and "frost5.jpg" in msg and "hendrycks/robustness" in msg
  assert "imagecorruptions" in msg and C.FROST_ENV in msg and str(tmp_path) in msg
