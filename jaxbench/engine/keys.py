"""The config keys the engine reads, with their defaults: the one place they are written.

:func:`jaxbench.configs.base` builds every config from :data:`ENGINE`; the engine
reads a key through :func:`get` (a config that lacks a key gets its declared
value); :func:`check` refuses any key that neither the engine nor the config's
suite declares (a suite declares its sections in ``Suite.sections``, with the
same :class:`Key` objects), naming the closest known key.

A key whose default is a dict is a *section*: its own keys are checked the same
way (``config.zeroshot.templats`` is refused). ``free=True`` marks a dict that
is data (a mapping chosen by the user), whose keys are not checked.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping, Optional

import ml_collections
from ml_collections import config_dict

from jaxbench.model_setup import ConfigError

_SAME = object()


@dataclasses.dataclass(frozen=True)
class Key:
  """One config key.

  Attributes:
    default: the value :func:`jaxbench.configs.base` (or a suite's section) writes;
      a dict is a section (its keys are Keys or plain defaults).
    doc: what the key does (one line).
    volatile: may change between runs on one workdir (it never changes results).
    in_base: written by ``configs.base``; False: a config usually lacks it.
    absent: what the engine reads when a config lacks the key (default: ``default``).
    type: the type of a ``None`` default (an ml_collections placeholder).
    free: a dict default that is data, not a section (its keys are not checked).
  """
  default: Any
  doc: str = ""
  volatile: bool = False
  in_base: bool = True
  absent: Any = _SAME
  type: Optional[type] = None
  free: bool = False

  @property
  def fallback(self) -> Any:
    return self.default if self.absent is _SAME else self.absent


def _zs(default, doc):
  return Key(default, doc)


# Every key the engine itself reads (the suites declare their own sections).
ENGINE: dict[str, Key] = {
    "suite": Key("zeroshot", "the suite that runs the config and names its rows "
                 "(jaxbench.suites.SUITES)"),
    "seed": Key(0, "run seed: per-example keys are fold_in(key(seed), example uid)"),
    "models": Key(("clip_vit_b32",), "model specs (jaxbench.models.load)"),
    "zeroshot": Key({
        "classnames": _zs("imagenet", "class-name set of zero-shot heads"),
        "templates": _zs("clip80", "prompt template set ('learned:PATH[:N]': learned)"),
        "head": _zs("imagenet", "'imagenet': ImageNet head projected per set; 'dataset': "
                    "a head over each set's class names"),
        "logit_scale": _zs("model", "'model' (the model's own) or a number (RoZ: '100')"),
    }, "zero-shot head settings", absent={}),
    "preprocess": Key("", "'' each model's own; 'clip' CLIP's for every model (RoZ)"),
    "data_root": Key("~/data", "sets are found here under their official folder names",
                     absent=None),
    "tfds_dir": Key("", "fallback TFDS data_dir", absent=None),
    "datasets": Key(("imagenet",), "dataset specs (jaxbench.data.catalog)"),
    "transforms": Key(("clean",), "transform specs: 'clean', 'shift:SPEC', 'attack:SPEC'",
                      absent=("clean",)),
    "dataset_transforms": Key({}, "{dataset name: transforms} replacing config.transforms "
                              "for that set", in_base=False, free=True),
    "batch_size": Key(128, "global; rounded up to a multiple of the data-parallel size",
                      volatile=True),
    "mesh": Key({"data": Key(-1, "data-parallel devices (-1: all)"),
                 "model": Key(1, "model-parallel devices")},
                "device mesh", volatile=True, absent={}),
    "param_sharding": Key("replicate", "or 'fsdp' over the mesh's model axis", volatile=True),
    "checkpoint_every": Key(50, "batches between progress checkpoints", volatile=True),
    "log_every": Key(10, "batches between progress log lines", volatile=True),
    "num_workers": Key(8, "grain reader threads per process", volatile=True),
    "decode_processes": Key(0, ">0: decode in this many worker processes (grain "
                            "mp_prefetch)", volatile=True),
    "prepared_cache": Key("", "dir of decoded+cropped pixels (jaxbench.data.prepared); "
                          "'' off", volatile=True),
    "device_resize": Key(0, "N > 0: the host only decodes; PIL's exact resize + center "
                         "crop run on the device from an N x N uint8 canvas (larger images "
                         "resized on the host); 0 off", volatile=True),
    "jpeg_draft": Key(False, "opt-in faster JPEG decoding at reduced DCT scale: NOT "
                      "pixel-exact; recorded in each row's provenance"),
    "precision": Key("float32", "'float32', 'tf32' or 'bfloat16'"),
    "max_examples": Key(-1, "-1: every example of each set; else the first N"),
    "report": Key(False, "write WORKDIR/report after the run", volatile=True),
    "workdir_policy": Key("strict", "'strict': refuse a workdir of another config; "
                          "'extend': add to it", volatile=True),
    "on_data_change": Key("error", "or 'restart': a pass whose data changed starts over",
                          volatile=True),
    "plugins": Key((), "modules imported before anything is resolved (they register "
                   "models, datasets, shifts, attacks or suites)", in_base=False,
                   volatile=True),
}

# Config keys that may change between runs on one workdir (they do not change results).
VOLATILE = frozenset(k for k, key in ENGINE.items() if key.volatile)
# The zero-shot head settings at their defaults (model labels list the others).
ZEROSHOT_DEFAULTS = {k: v.default for k, v in ENGINE["zeroshot"].default.items()}


def get(config, name: str):
  """``config[name]``, or the engine's declared value when the config lacks it."""
  if name in config:
    return config[name]
  return ENGINE[name].fallback


def zeroshot(config) -> dict:
  """The zero-shot head settings, defaults filled in."""
  return {**ZEROSHOT_DEFAULTS, **dict(get(config, "zeroshot") or {})}


def to_config(declared: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A ConfigDict holding the declared defaults (sections nested).

  Args:
    declared: {name: Key or plain default}; keys with ``in_base=False`` are left out.
  """
  c = ml_collections.ConfigDict()
  for name, key in declared.items():
    key = key if isinstance(key, Key) else Key(key)
    if key.in_base:
      c[name] = _value(key)
  return c


def _value(key: Key):
  if key.default is None and key.type is not None:
    return config_dict.placeholder(key.type)
  if isinstance(key.default, dict) and not key.free:
    return to_config(key.default)
  if isinstance(key.default, dict):
    return ml_collections.ConfigDict(dict(key.default))
  return key.default


def base_config() -> ml_collections.ConfigDict:
  """Every engine key written by ``configs.base``, at its default."""
  return to_config(ENGINE)


def closest(name: str, known) -> Optional[str]:
  """The known name nearest to ``name`` (None when nothing is close at all)."""
  hits = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.0)
  return hits[0] if hits else None


def check(config, declared: Mapping[str, Any], *, where: str = "config",
          elsewhere: Optional[Mapping[str, str]] = None, suite: str = "") -> None:
  """Refuses the first key of ``config`` that ``declared`` does not declare.

  Args:
    config: a ConfigDict (or dict) to check.
    declared: {name: Key or plain default}; dict defaults are sections, checked too.
    where: the dotted path of ``config`` ('config', 'config.zeroshot').
    elsewhere: {key: who declares it} for keys other suites declare (named in the
      error, which then says which suite would read it).
    suite: the config's suite (named in that error).

  Raises:
    ConfigError: one line naming the key and the closest known key.
  """
  for name in sorted(config.keys()):
    if name not in declared:
      owner = (elsewhere or {}).get(name)
      if owner:
        raise ConfigError(f"config key '{where}.{name}' is read by {owner}, not by "
                          f"config.suite={suite!r}: remove it or change config.suite")
      near = closest(name, declared)
      hint = f"; closest known key: '{where}.{near}'" if near else ""
      raise ConfigError(f"unknown config key '{where}.{name}'{hint}")
    key = declared[name]
    key = key if isinstance(key, Key) else Key(key)
    value = config[name]
    if isinstance(key.default, dict) and not key.free and value is not None and \
        hasattr(value, "keys"):
      check(value, key.default, where=f"{where}.{name}")
