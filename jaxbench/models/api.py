"""The Model contract: the one object attacks, shifts, metrics and the runner see.

A :class:`Model` is a frozen bundle of pure functions and their parameters:

* ``apply(params, images) -> logits`` takes float32 images in [0, 1], NHWC, at
  the model's input size. Normalisation (mean/std) happens *inside* ``apply`` so
  attacks and shifts always work in pixel space.
* zero-shot models also expose ``encode_image(params, images)`` (unnormalised
  embeddings, images in [0, 1]) and ``encode_text(params, token_ids)``; their
  ``apply`` is ``logit_scale * normalize(encode_image) @ head.T (+ bias)`` once a
  head is attached with :meth:`Model.with_head`.

``params`` is always a dict ``{'net': <tower params>, ...}``; ``with_head`` adds
``'head'`` (K, D) and ``'logit_scale'``/``'logit_bias'`` scalars, so the head is a
leaf of the pytree that ``jax.jit`` shards like any other parameter.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import precision as precision_lib

Params = Any


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """How raw images become model inputs (host side) and how inputs are normalised.

  Attributes:
    size: side of the square model input, pixels.
    resize: short-side length before the center crop; ``size`` means resize the
      short side to the crop size (CLIP), ``round(size / crop_pct)`` is timm's rule.
    interpolation: PIL filter name for the resize: 'bicubic', 'bilinear', ...
    crop: 'center' (the only crop used for evaluation).
    mean: per-channel mean in [0, 1] units, subtracted inside ``apply``.
    std: per-channel std in [0, 1] units, divided inside ``apply``.
  """
  size: int
  resize: int
  interpolation: str = "bicubic"
  crop: str = "center"
  mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
  std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

  def spec(self) -> str:
    """Canonical string recorded with every result row."""
    return (f"resize({self.resize},{self.interpolation})|crop({self.size},{self.crop})|"
            f"norm(mean={tuple(round(m, 8) for m in self.mean)},"
            f"std={tuple(round(s, 8) for s in self.std)})")

  def normalize(self, images: jax.Array) -> jax.Array:
    """Maps [0, 1] NHWC images to the network's normalised input space."""
    mean = jnp.asarray(self.mean, images.dtype)
    std = jnp.asarray(self.std, images.dtype)
    return (images - mean) / std


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / ||x||, safe at zero."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
  """A loaded model: pure functions, parameters, preprocessing and provenance.

  Attributes:
    name: canonical spec string the model was loaded from.
    params: ``{'net': ...}`` plus ``'head'``/``'logit_scale'``/``'logit_bias'``
      once a zero-shot head is attached.
    preprocess: see :class:`Preprocess`.
    kind: 'zeroshot' (image and text towers) or 'supervised' (a classifier).
    label_space: name of the space ``apply``'s logits live in ('imagenet1k'), or
      None for a zero-shot model without a head.
    num_classes: width of ``apply``'s logits (0 for a headless zero-shot model).
    provenance: repo, revision, file hashes, architecture config.
    net_logits: supervised only: ``(net_params, x_normalised) -> logits``.
    net_image: zero-shot only: ``(net_params, x_normalised) -> (N, D)`` embeddings.
    net_text: zero-shot only: ``(net_params, ids int32 (N, L)) -> (N, D)``.
    tokenizer: zero-shot only: ``list[str] -> int32 (N, context_length)``.
    context_length: text context length (77 for CLIP).
    head_info: description of the attached head (classes, templates), recorded.
    score: 'softmax' (CLIP) or 'sigmoid' (SigLIP): how zero-shot logits are used.
  """
  name: str
  params: Params
  preprocess: Preprocess
  kind: str
  label_space: Optional[str] = None
  num_classes: int = 0
  provenance: dict = dataclasses.field(default_factory=dict)
  net_logits: Optional[Callable[[Params, jax.Array], jax.Array]] = None
  net_image: Optional[Callable[[Params, jax.Array], jax.Array]] = None
  net_text: Optional[Callable[[Params, jax.Array], jax.Array]] = None
  tokenizer: Optional[Callable[[Sequence[str]], np.ndarray]] = None
  context_length: int = 77
  head_info: dict = dataclasses.field(default_factory=dict)
  score: str = "softmax"
  precision: str = "float32"
  # Family-specific handle (e.g. the Flax CLIP module, for learned prompts that
  # run the text tower on embeddings). Never needed by attacks, shifts or metrics.
  arch: Any = None
  # True when the text tower is causal and pools at the end-of-text token, so a
  # prompt may be padded to any length >= its own (the head builder buckets
  # prompts by length). SigLIP-style towers that pool the last position: False.
  causal_text: bool = False

  # --- the contract -------------------------------------------------------
  def apply(self, params: Params, images: jax.Array) -> jax.Array:
    """Logits for images.

    Args:
      params: this model's params (``model.params`` or a sharded copy).
      images: float (N, H, W, 3) in [0, 1] at ``preprocess.size``.

    Returns:
      float32 (N, num_classes) logits.
    """
    if self.kind != "supervised" and "head" not in params:
      raise ValueError(f"zero-shot model {self.name!r} has no head: call "
                       "model.with_head(jaxbench.zeroshot.build_head(model, ...)) first")
    with precision_lib.scope(self.precision):
      x = self.preprocess.normalize(images.astype(jnp.float32))
      x = x.astype(self._compute_dtype())
      if self.kind == "supervised":
        return self.net_logits(params["net"], x).astype(jnp.float32)
      z = l2_normalize(self.net_image(params["net"], x).astype(jnp.float32))
      logits = params["logit_scale"] * z @ params["head"].T
      return logits + params.get("logit_bias", 0.0)

  def encode_image(self, params: Params, images: jax.Array) -> jax.Array:
    """Unnormalised image embeddings (N, D) for [0, 1] NHWC images."""
    self._need_zeroshot("encode_image")
    with precision_lib.scope(self.precision):
      x = self.preprocess.normalize(images.astype(jnp.float32)).astype(self._compute_dtype())
      return self.net_image(params["net"], x).astype(jnp.float32)

  def encode_text(self, params: Params, token_ids: jax.Array) -> jax.Array:
    """Unnormalised text embeddings (N, D) for int32 token ids (N, L), L <= context."""
    self._need_zeroshot("encode_text")
    with precision_lib.scope(self.precision):
      return self.net_text(params["net"], token_ids).astype(jnp.float32)

  def tokenize(self, texts: Sequence[str]) -> np.ndarray:
    """int32 (N, context_length) token ids, truncated as the model's tokenizer does."""
    self._need_zeroshot("tokenize")
    return self.tokenizer(list(texts))

  def with_head(self, head) -> "Model":
    """A copy whose ``apply`` gives zero-shot logits over ``head``'s classes.

    Args:
      head: a :class:`jaxbench.zeroshot.head.ZeroShotHead`.
    """
    self._need_zeroshot("with_head")
    params = dict(self.params)
    params["head"] = jnp.asarray(head.weights, jnp.float32)
    params["logit_scale"] = jnp.asarray(head.logit_scale, jnp.float32)
    if head.logit_bias is not None:
      params["logit_bias"] = jnp.asarray(head.logit_bias, jnp.float32)
    return dataclasses.replace(
        self, params=params, label_space=head.label_space,
        num_classes=int(head.weights.shape[0]), head_info=head.info())

  def with_params(self, params: Params) -> "Model":
    return dataclasses.replace(self, params=params)

  def with_preprocess(self, preprocess: Preprocess) -> "Model":
    """Same network, other host-side preprocessing (RoZ feeds every model CLIP's)."""
    return dataclasses.replace(self, preprocess=preprocess)

  @property
  def is_zeroshot(self) -> bool:
    return self.kind == "zeroshot"

  def describe(self) -> dict:
    """What a results row records about the model."""
    return {
        "model": self.name,
        "kind": self.kind,
        "preprocess": self.preprocess.spec(),
        "precision": self.precision,
        "label_space": self.label_space,
        "provenance": self.provenance,
        **({"head": self.head_info} if self.head_info else {}),
    }

  def _compute_dtype(self):
    return jnp.bfloat16 if self.precision == "bfloat16" else jnp.float32

  def _need_zeroshot(self, what: str):
    if self.kind != "zeroshot":
      raise ValueError(f"{what} needs a zero-shot (image-text) model; {self.name!r} is "
                       f"{self.kind}")
