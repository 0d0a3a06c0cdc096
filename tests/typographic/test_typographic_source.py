"""Reading generation sources: bad folders, arrays and CIFAR batches are named."""
import numpy as np
import pytest
from PIL import Image

from jaxbench.typographic import generate as gen
from jaxbench.typographic import source

import typographic_fixtures as fx


def test_bad_sources_are_named(tmp_path):
  (tmp_path / "a" / "dogs").mkdir(parents=True)
  Image.fromarray(fx.smooth(40, 40, 0)).save(tmp_path / "a" / "dogs" / "x.png")
  with pytest.raises(source.SourceError, match="class folder 'dogs' is not an ImageNet wnid"):
    source.list_source(str(tmp_path / "a"), "imagenet_t")
  np.savez(tmp_path / "bad.npz", images=np.zeros((2, 32, 32), np.uint8), labels=np.zeros(2))
  with pytest.raises(source.SourceError, match="uint8 \\(N, H, W, 3\\)"):
    source.list_source(str(tmp_path / "bad.npz"), "cifar10_t")
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "test_batch.bin").write_bytes(b"\x00" * 3074)
  with pytest.raises(source.SourceError, match="not a multiple of 3073"):
    source.list_source(str(tmp_path / "c"), "cifar10_t")
  with pytest.raises(source.SourceError, match="does not exist"):
    source.list_source(str(tmp_path / "nope"), "imagenet_t")
  (tmp_path / "e").mkdir()
  with pytest.raises(source.SourceError, match="no images found"):
    source.list_source(str(tmp_path / "e"), "cifar10_t")
  (tmp_path / "f" / "cat").mkdir(parents=True)
  for ext in ("png", "jpeg"):
    Image.fromarray(fx.smooth(40, 40, 0)).save(tmp_path / "f" / "cat" / f"x.{ext}")
  with pytest.raises(source.SourceError, match="would write the same output file"):
    gen.generate(str(tmp_path / "f"), str(tmp_path / "g"), "cifar10_t", log=None)
