"""RoZ's published records of which class it wrote on each image.

RoZ published ``imgNet_record.pickle`` ({ImageNet val file name: written class
index}; images it skipped are absent) and ``cifar10_record.pickle`` ([(true
class, written class)] in test-set order). :func:`read_roz_record` reads them
with an unpickler that builds only dicts, lists, tuples, strings and ints and
refuses any other object (a pickle can run code on load).
"""
from __future__ import annotations

import pickle

from jaxbench.typographic.errors import TypographicError
from jaxbench.typographic.vocabulary import vocabulary


class _PlainUnpickler(pickle.Unpickler):
  """Builds only the pickle protocol's own containers and scalars; no globals."""

  def find_class(self, module, name):
    raise TypographicError(
        f"{self.path}: refuses to load {module}.{name}: a RoZ record holds only "
        "dicts, lists, tuples, strings and ints")

  def persistent_load(self, pid):
    raise TypographicError(f"{self.path}: refuses persistent id {pid!r}")


def _plain(obj, path: str, where: str = "record"):
  if isinstance(obj, bool) or not isinstance(obj, (dict, list, tuple, str, int)):
    raise TypographicError(f"{path}: {where} is a {type(obj).__name__}; a RoZ record "
                           "holds only dicts, lists, tuples, strings and ints")
  if isinstance(obj, dict):
    for k, v in obj.items():
      _plain(k, path, f"{where} key"), _plain(v, path, f"{where}[{k!r}]")
  elif isinstance(obj, (list, tuple)):
    for i, v in enumerate(obj):
      _plain(v, path, f"{where}[{i}]")


def read_roz_record(path: str, kind: str) -> dict:
  """RoZ's published record as {example id or file name: (true label or None, written)}.

  Args:
    path: ``imgNet_record.pickle`` (kind 'imagenet_t': {file name: written class};
      keys are matched to source file names) or ``cifar10_record.pickle`` (kind
      'cifar10_t': [(true, written)]; keys 'test_%05d' as the CIFAR binary source).
    kind: 'imagenet_t' or 'cifar10_t'.

  Raises:
    TypographicError: the file holds anything but the plain types (no object is
      built: globals are refused before construction), or the wrong structure.
  """
  with open(path, "rb") as f:
    up = _PlainUnpickler(f)
    up.path = path
    try:
      obj = up.load()
    except TypographicError:
      raise
    except Exception as e:  # truncated or not a pickle
      raise TypographicError(f"{path}: not a readable pickle ({e})") from e
  _plain(obj, path)
  k = vocabulary(kind).num_classes
  if kind == "imagenet_t":
    if not isinstance(obj, dict) or not all(
        isinstance(n, str) and isinstance(c, int) and 0 <= c < k for n, c in obj.items()):
      raise TypographicError(f"{path}: expected {{image file name: class index "
                             f"0..{k - 1}}} (imgNet_record.pickle)")
    return {n: (None, c) for n, c in obj.items()}
  if not isinstance(obj, (list, tuple)) or not all(
      isinstance(t, (list, tuple)) and len(t) == 2 and all(0 <= v < k for v in t)
      for t in obj):
    raise TypographicError(f"{path}: expected [(true class, written class)] with "
                           f"classes 0..{k - 1} (cifar10_record.pickle)")
  return {f"test_{i:05d}": (int(t), int(w)) for i, (t, w) in enumerate(obj)}
