"""heads.features: the image-encoding loop honours the run's decoding settings
(config.device_resize, decode threads/processes) and gives the same features."""
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxbench import models
from jaxbench.data import sources
from jaxbench.heads import features


def _folder(root):
  """JPEGs of mixed sizes around the tiny CLIP's 32-pixel crop, one larger than the
  48-pixel canvas (the host resizes that one)."""
  rng = np.random.default_rng(7)
  for i, (w, h) in enumerate([(40, 30), (30, 40), (47, 33), (64, 40), (36, 36), (45, 31)]):
    c = ("cat", "dog")[i % 2]
    os.makedirs(os.path.join(root, c), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
        os.path.join(root, c, f"{c}_{i:02d}.JPEG"), "JPEG", quality=90)
  return root


def _pixels(images):
  """A stand-in encoder that returns the pixels it is given: compares the inputs."""
  return jnp.asarray(images).reshape(images.shape[0], -1).astype(jnp.float32)


@pytest.mark.parametrize("kw", [{"canvas": 48}, {"canvas": 48, "mesh": True},
                                {"canvas": 64, "num_processes": 2}])
def test_device_resize_encodes_the_host_pixels(tiny_clip, tmp_path, monkeypatch, kw):
  from jaxbench import parallel
  from jaxbench.data import resample
  model = models.load(tiny_clip[0])
  src = sources.ImageFolderSource(_folder(str(tmp_path / "data")), folder_kind="name")
  idx = np.arange(len(src))
  mesh = parallel.make_mesh(-1, 1) if kw.pop("mesh", False) else None
  batch = 8 if mesh is not None else 4
  host, hl = features.encode_source(model, src, idx, _pixels, batch_size=batch, mesh=mesh)
  finished = []                         # batches that reached the device with their tables
  real = resample.finish
  monkeypatch.setattr(resample, "finish", lambda b: (
      finished.append(resample.TABLE_KEYS[0] in b), real(b))[1])
  dev, dl = features.encode_source(model, src, idx, _pixels, batch_size=batch, mesh=mesh, **kw)
  assert finished and all(finished), "decode-only batches, resized on the device"
  assert host.shape == (len(src), model.preprocess.size ** 2 * 3)
  np.testing.assert_array_equal(dev, host)
  np.testing.assert_array_equal(dl, hl)
  # The stand-in is right: the host pixels are the model's resize + crop of each file.
  from jaxbench.data import pipeline
  import io
  one = pipeline.resize_crop(Image.open(io.BytesIO(src[3]["image_bytes"])).convert("RGB"),
                             model.preprocess)
  np.testing.assert_array_equal(host[3], np.asarray(one, np.float32).reshape(-1))


def test_input_settings_follow_the_config(tiny_clip):
  model = models.load(tiny_clip[0])
  c = ml_collections.ConfigDict({"device_resize": 48, "num_workers": 3, "decode_processes": 2})
  assert features.input_settings(c, model) == {"num_threads": 3, "num_processes": 2,
                                               "canvas": 48}
  assert features.input_settings(ml_collections.ConfigDict({}), model)["canvas"] == 0
  with pytest.raises(ValueError, match=r"device_resize=16: the canvas is smaller"):
    features.input_settings(ml_collections.ConfigDict({"device_resize": 16}), model)
