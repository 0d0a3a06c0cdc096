"""Loading a model as a config asks for it: precision and the 'clip' preprocessing.

One floor below the engine and the learning steps that run before its passes
(prompt learning in :mod:`jaxbench.zeroshot.learned.clip_auto`, linear probes in
:mod:`jaxbench.heads.learn`), so all of them load a model the same way without
importing the engine.
"""

from __future__ import annotations

from jaxbench.models.api import Model, Preprocess, CLIP_MEAN, CLIP_STD


class ConfigError(ValueError):
  """A config key or value the engine or a suite cannot use."""


def _get(config, key, default):
  return config[key] if key in config else default


def load_model(spec: str, config) -> Model:
  """The model ``spec`` at ``config.precision``, with CLIP preprocessing if
  ``config.preprocess == 'clip'``.

  Raises:
    ConfigError: 'clip' preprocessing asked for a model whose trained head expects other
      preprocessing.
  """
  from jaxbench import models
  model = models.load(spec, precision=_get(config, "precision", "float32")) \
      if _get(config, "precision", "float32") != "float32" else models.load(spec)
  if _get(config, "preprocess", "") == "clip":
    size = model.preprocess.size
    clip_pp = Preprocess(size=size, resize=size, interpolation="bicubic", mean=CLIP_MEAN,
                         std=CLIP_STD)
    if (model.head_info or {}).get("trained_head") and clip_pp != model.preprocess:
      # A trained head is only valid on the features it was trained on.
      raise ConfigError(f"model {spec!r}: its head was trained with preprocessing "
                        f"{model.preprocess.spec()}; config.preprocess='clip' would feed it "
                        f"{clip_pp.spec()}. Use config.preprocess='' for this head")
    model = model.with_preprocess(clip_pp)
  return model
