"""Named evaluation sets: ``catalog.get(spec) -> EvalSet``.

    get("imagenet_r(root='/data/imagenet-r')")
    get("imagenet_r(tfds_dir='/data/tfds')")
    get("imagenet_v2(variant='threshold-0.7')", data_root='/data')
    get("cifar10_c(corruption='fog', severity=3)", data_root='/data')
    get("image_folder(root='/data/my_set')")
    get("tfds(name='imagenet_a', split='test', data_dir='/data/tfds')")

Where the data lives is not part of a set's identity: the EvalSet's ``name``
(the results key) is the canonical spec without location arguments (root,
tfds_dir, data_root, ...), so a set read from its folder or from TFDS, here or
on another machine, shares one key. The full spec is kept in
``metadata['spec']``.

Context from the config (:func:`get` keyword arguments): ``data_root`` is
where sets are looked for under their official folder names when the spec gives
no ``root``; ``tfds_dir`` is the fallback for sets with a TFDS builder that are
not found there.

Importing this module is cheap: readers are imported when a set is built.
Other modules add sets with :func:`register` (``jaxbench.data.synthetic`` is imported
on demand; modules above this floor, the typographic sets, through the package
root's plugin table ``jaxbench.PLUGINS['datasets']``).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
from typing import TYPE_CHECKING, Callable, Optional

import jaxbench
from jaxbench import registry

if TYPE_CHECKING:
  from jaxbench.data.evalset import EvalSet

DATASETS = registry.Registry("dataset")
register = DATASETS.register

# Modules that register more sets when imported.
PLUGINS = ("jaxbench.data.synthetic",)

# Arguments that say where data is, not what it is (dropped from the name).
LOCATION_ARGS = frozenset({
    "root", "tfds_dir", "data_dir", "data_root", "labels_file", "mappings_dir",
    "metadata_dir", "objectnet_root", "vid_root", "ytbb_root"})
# Generic sets whose location is their identity.
_LOCATION_IS_IDENTITY = {"image_folder": {"root"}, "tfds": set()}


def _lazy(module: str, attr: str, **fixed) -> Callable:
  """A factory that imports ``module.attr`` on first call."""
  def factory(*args, **kwargs):
    target = getattr(importlib.import_module(module), attr)
    return target(*args, **fixed, **kwargs)
  factory.__qualname__ = factory.__name__ = attr
  factory.target = (module, attr)
  return factory


def _target(factory: Callable) -> Callable:
  if hasattr(factory, "target"):
    module, attr = factory.target
    return getattr(importlib.import_module(module), attr)
  return factory


_NATURAL = ("imagenet", "imagenet_v2", "imagenet_r", "imagenet_sketch", "imagenet_a",
            "objectnet", "imagenet_vid_robust", "ytbb_robust", "imagenet_val_on_r_classes",
            "imagenet_val_on_a_classes", "imagenet_val_on_objectnet_classes",
            "imagenet_val_on_vid_robust_classes", "imagenet_val_on_ytbb_robust_classes")
for _name in _NATURAL:
  register(_name, _lazy("jaxbench.data.natural", _name))
for _name in ("cifar10", "cifar10_train", "cifar10_1", "cifar10_c"):
  register(_name, _lazy("jaxbench.data.cifar", _name))


@register("image_folder")
def image_folder(root: str, folder_kind: str = "auto", num_classes: Optional[int] = None):
  """Any ``root/<class folder>/<image>`` tree, labelled by folder kind.

  wnid folders are scored in the 1000-way ImageNet space; integer folders as
  class indices; other names by their sorted position.
  """
  from jaxbench import labels as labels_lib
  from jaxbench.data import sources
  from jaxbench.data.evalset import EvalSet
  src = sources.ImageFolderSource(root, folder_kind=folder_kind, num_classes=num_classes)
  if src.folder_kind == "wnid":
    k, names, space = 1000, labels_lib.imagenet_class_names(), "imagenet1k"
  elif src.folder_kind == "index":
    k = num_classes or int(src.labels.max()) + 1
    names = labels_lib.imagenet_class_names() if k == 1000 else ()
    space = "imagenet1k" if k == 1000 else "custom"
  else:
    k, names, space = len(src.class_folders), tuple(src.class_folders), "custom"
  return EvalSet(name="", source=src, num_classes=k, class_names=names,
                 model_label_space=space,
                 metadata={"source": repr(src), "n": len(src), **src.summary()})


@register("tfds")
def tfds_set(name: str, split: str = "test", data_dir: Optional[str] = None,
             num_classes: Optional[int] = None):
  """Any prepared TFDS image classification dataset (array_record/parquet)."""
  from jaxbench import labels as labels_lib
  from jaxbench.data import sources
  from jaxbench.data.evalset import EvalSet
  src = sources.TfdsSource(name, split, data_dir)
  label_names = src.label_names()
  if num_classes is None:
    if not label_names:
      raise ValueError(f"tfds({name!r}): the dataset's label feature has no class count; "
                       "pass num_classes=")
    num_classes = len(label_names)
  if num_classes == 1000:
    names = labels_lib.imagenet_class_names()
  else:
    names = label_names if len(label_names) == num_classes else ()
  return EvalSet(name="", source=src, num_classes=int(num_classes), class_names=names,
                 model_label_space="imagenet1k" if num_classes == 1000 else name,
                 metadata={"source": repr(src), "n": len(src)})


def _load_plugins():
  for module in PLUGINS:
    if importlib.util.find_spec(module) is not None:
      importlib.import_module(module)  # errors inside a plugin surface as they are
  jaxbench.load_plugins("datasets")


def names() -> list[str]:
  """All registered set names (plugins included)."""
  _load_plugins()
  return DATASETS.names()


def name_of(spec: str) -> str:
  """The canonical spec without location arguments: the set's results key."""
  name, args, kwargs = registry.parse(spec)
  keep = _LOCATION_IS_IDENTITY.get(name, set())
  kwargs = {k: v for k, v in kwargs.items() if k not in LOCATION_ARGS or k in keep}
  return registry.format_spec(name, args, kwargs)


def get(spec: str, *, data_root: Optional[str] = None,
        tfds_dir: Optional[str] = None) -> "EvalSet":
  """Builds the EvalSet a spec names.

  Args:
    spec: e.g. "imagenet_r", "imagenet_r(root='/data/imagenet-r')".
    data_root: where to look for sets under their official folder names when
      the spec gives neither root nor tfds_dir.
    tfds_dir: TFDS data_dir used for sets with a TFDS builder that are not
      found under data_root.

  Returns:
    The EvalSet, with ``name`` = :func:`name_of` (spec) and the full canonical
    spec in ``metadata['spec']``.

  Raises:
    registry.SpecError: unknown name (the message lists the known ones) or bad
      arguments; LayoutError / MetadataError / LabelError from the readers.
  """
  from jaxbench.data import sources
  name, args, kwargs = registry.parse(spec)
  if name not in DATASETS:
    _load_plugins()
  factory = DATASETS.factory(name)
  try:
    params = inspect.signature(_target(factory)).parameters
  except (TypeError, ValueError):
    params = {}
  explicit = any(k in kwargs for k in ("root", "tfds_dir", "data_dir"))
  call_kwargs = dict(kwargs)
  if data_root is not None and "data_root" in params and "data_root" not in kwargs:
    call_kwargs["data_root"] = data_root
  if params:
    try:
      inspect.signature(_target(factory)).bind(*args, **call_kwargs)
    except TypeError as e:
      accepted = ", ".join(params)
      raise registry.SpecError(f"dataset spec {spec!r}: {e}; {name} accepts: {accepted}") from e
  try:
    evalset = factory(*args, **call_kwargs)
  except sources.DataNotFound as not_found:
    if explicit or tfds_dir is None or "tfds_dir" not in params:
      raise
    try:
      evalset = factory(*args, **{**call_kwargs, "tfds_dir": tfds_dir})
    except sources.LayoutError as e:
      # Both places failed: say where the folders were looked for and what TFDS
      # searched, not only the fallback's complaint.
      raise sources.DataNotFound(f"{not_found}; and the fallback config.tfds_dir="
                                 f"{tfds_dir!r} failed: {e}") from e
  full = registry.format_spec(name, args, kwargs)
  metadata = {**evalset.metadata, "spec": full}
  return dataclasses.replace(evalset, name=evalset.name or name_of(spec), metadata=metadata)
