"""Reading RoZ's published records: only plain types, the expected structure."""
import os

import pytest

from jaxbench.typographic import errors, roz_record


class _Evil:
  marker = ""

  def __reduce__(self):
    return (os.mkdir, (self.marker,))


def test_roz_record_reader_refuses_anything_but_plain_types(tmp_path):
  import pickle
  evil = _Evil()
  evil.marker = str(tmp_path / "pwned")
  path = tmp_path / "imgNet_record.pickle"
  path.write_bytes(pickle.dumps({"ILSVRC2012_val_00000001.JPEG": evil}))
  with pytest.raises(errors.TypographicError, match=r"refuses to load (posix|os)\.mkdir"):
    roz_record.read_roz_record(str(path), "imagenet_t")
  assert not os.path.exists(evil.marker)       # nothing ran
  for bad, why in (({"a.JPEG": 1.5}, "is a float"), ({"a.JPEG": {1, 2}}, "is a set"),
                   ({"a.JPEG": 1000}, "class index 0..999"), ([(1, 2)], "image file name")):
    path.write_bytes(pickle.dumps(bad, protocol=4))
    with pytest.raises(errors.TypographicError, match=why):
      roz_record.read_roz_record(str(path), "imagenet_t")
  path.write_bytes(b"not a pickle")
  with pytest.raises(errors.TypographicError, match="not a readable pickle"):
    roz_record.read_roz_record(str(path), "imagenet_t")
