"""A head file is a model: reload, PyTorch equality, attacks through backbone + head, refusals."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxbench import attacks, models
from jaxbench.heads import artifact, features, model as probe_model

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).reshape(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).reshape(1, 3, 1, 1)


@pytest.fixture(scope="module")
def probe(tiny_clip, tmp_path_factory):
  """(head path, the artifact, torch pixel-space backbone + nn.Linear) on the tiny CLIP."""
  d, ref = tiny_clip
  backbone = models.load(d)
  rng = np.random.default_rng(0)
  w = rng.normal(size=(3, 16)).astype(np.float32)
  b = rng.normal(size=(3,)).astype(np.float32)
  art = artifact.HeadArtifact(
      weight=w, bias=b, backbone=d, preprocess=artifact.preprocess_record(backbone.preprocess),
      features=features.identity(backbone), label_space="toy3", class_names=("a", "b", "c"),
      data={"train": "toy", "n": 30, "ids_sha256": features.ids_hash(range(30))}, seed=7,
      recipe={"method": "logreg", "C": 0.3})
  path = str(tmp_path_factory.mktemp("heads") / "toy.safetensors")
  artifact.save(art, path)
  head = torch.nn.Linear(16, 3)
  with torch.no_grad():
    head.weight.copy_(torch.from_numpy(w))
    head.bias.copy_(torch.from_numpy(b))

  class Pixels(torch.nn.Module):   # [0, 1] NCHW -> CLIP-normalised -> features -> head
    def __init__(self):
      super().__init__()
      self.clip, self.head = ref, head

    def forward(self, x):
      pooled = self.clip.vision_model(pixel_values=(x - MEAN) / STD).pooler_output
      return self.head(self.clip.visual_projection(pooled))
  return path, art, Pixels().eval()


def test_artifact_reloads_identically(probe, tmp_path):
  path, art, _ = probe
  again = artifact.load(path)
  np.testing.assert_array_equal(again.weight, art.weight)
  np.testing.assert_array_equal(again.bias, art.bias)
  assert again.record() == art.record()
  # Saving the reloaded head gives the same content hash: the file is deterministic.
  assert artifact.save(again, str(tmp_path / "copy.safetensors")) == artifact.content_hash(path)
  # A modified file is refused.
  blob = bytearray(open(path, "rb").read())
  blob[-3] ^= 0xFF
  bad = tmp_path / "bad.safetensors"
  bad.write_bytes(bytes(blob))
  with pytest.raises(artifact.ArtifactError, match="content sha256"):
    artifact.load(str(bad))
  with pytest.raises(artifact.ArtifactError, match="does not exist"):
    artifact.load(str(tmp_path / "missing.safetensors"))


def test_probe_spec_equals_pytorch_backbone_plus_linear(probe):
  path, art, ref = probe
  m = models.load(f"probe:{path}")
  assert m.kind == "supervised" and m.num_classes == 3 and m.label_space == "toy3"
  assert m.describe()["head"]["recipe"] == {"method": "logreg", "C": 0.3}
  assert m.describe()["kind"] == "probe"    # a CLIP probe is no supervised baseline
  assert dataclasses.replace(m, params=m.params).describe()["kind"] == "probe"
  assert m.provenance["head_sha256"] == artifact.content_hash(path)
  x = np.random.default_rng(1).uniform(size=(4, 32, 32, 3)).astype(np.float32)
  ours = np.asarray(m.apply(m.params, jnp.asarray(x)))
  with torch.no_grad():
    theirs = ref(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
  np.testing.assert_allclose(ours, theirs, atol=1e-4)
  # The bare file path is the same model (the file names its backbone).
  bare = models.load(path)
  np.testing.assert_array_equal(np.asarray(bare.apply(bare.params, jnp.asarray(x))), ours)


@pytest.mark.parametrize("spec,make", [
    ("fgsm(eps=8/255)", lambda m: __import__("torchattacks").FGSM(m, eps=8 / 255)),
    ("bim(eps=8/255, steps=5, step_size=2/255, early_stop=False)",
     lambda m: __import__("torchattacks").BIM(m, eps=8 / 255, alpha=2 / 255, steps=5)),
], ids=["fgsm", "bim"])
def test_attack_through_probe_equals_pytorch(probe, spec, make):
  path, _, ref = probe
  m = models.load(f"probe:{path}")
  x = np.random.default_rng(2).uniform(size=(6, 32, 32, 3)).astype(np.float32)
  y = np.asarray(m.apply(m.params, jnp.asarray(x))).argmax(1)   # attack every example
  ours = np.asarray(attacks.get(spec)(m.apply, m.params, jnp.asarray(x), y).adv_images)
  theirs = make(ref)(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                     torch.from_numpy(y)).numpy().transpose(0, 2, 3, 1)
  close = np.abs(ours - theirs) <= 1e-5
  assert close.mean() >= 0.999, f"{spec}: {close.mean():.5f} of elements agree"
  assert np.abs(ours - x).max() > 1e-3


def test_other_features_are_refused_naming_both(probe, tiny_clip):
  path, art, _ = probe
  backbone = models.load(tiny_clip[0])
  other = backbone.with_preprocess(dataclasses.replace(backbone.preprocess,
                                                       interpolation="bilinear"))
  with pytest.raises(features.FeatureMismatch) as e:
    probe_model.attach(other, art, name="toy")
  msg = str(e.value)
  assert backbone.preprocess.spec() in msg and other.preprocess.spec() in msg
  assert "differs in preprocess" in msg
  renamed = dataclasses.replace(backbone, name="clip_vit_b32")
  with pytest.raises(features.FeatureMismatch, match=r"'clip_vit_b32'.*differs in model"):
    probe_model.attach(renamed, art)


@pytest.fixture(scope="module")
def timm_resnet(tmp_path_factory):
  """A timm-layout ResNet written once: (dir, torch reference, our backbone, x, torch x)."""
  import timm
  from timm.models._hub import save_for_hf
  torch.manual_seed(0)
  ref = timm.create_model("resnet18.tv_in1k", pretrained=False, layers=[1, 1, 1, 1],
                          num_classes=10)
  with torch.no_grad():   # non-trivial BatchNorm statistics
    for name, t in ref.named_buffers():
      if name.endswith("running_mean"):
        t.copy_(0.1 * torch.randn_like(t))
      elif name.endswith("running_var"):
        t.copy_(torch.rand_like(t) + 0.5)
  ref.eval()
  tmp_path = tmp_path_factory.mktemp("timm_resnet")
  d = str(tmp_path / "rn")
  save_for_hf(ref, d, safe_serialization=True, model_args=dict(layers=[1, 1, 1, 1]))
  backbone = models.load(d)
  x = np.random.default_rng(4).uniform(size=(3, 64, 64, 3)).astype(np.float32)
  mean = torch.tensor(backbone.preprocess.mean).reshape(1, 3, 1, 1)
  std = torch.tensor(backbone.preprocess.std).reshape(1, 3, 1, 1)
  xt = (torch.from_numpy(x.transpose(0, 3, 1, 2)) - mean) / std
  return d, ref, backbone, x, xt


def test_supervised_backbone_gives_timm_s_pooled_pre_classifier_features(timm_resnet):
  _, ref, backbone, x, xt = timm_resnet
  fn = features.feature_fn(backbone)
  ours = np.asarray(fn(backbone.params["net"], backbone.preprocess.normalize(jnp.asarray(x))))
  with torch.no_grad():
    want = ref.forward_head(ref.forward_features(xt), pre_logits=True).numpy()
  assert ours.shape == (3, 512)
  np.testing.assert_allclose(ours, want, atol=1e-4)


def test_supervised_backbone_features_are_the_penultimate_layer(timm_resnet):
  assert features.identity(timm_resnet[2])["features"] == "penultimate"


def test_new_head_equals_roz_s_fc_swap(timm_resnet, tmp_path):
  """A new 4-way head on the backbone (RoZ's fc swap)."""
  import copy
  d, ref, backbone, x, xt = timm_resnet
  ref = copy.deepcopy(ref)
  # RoZ's model.fc = Linear(D, K): the same as a head file on this backbone.
  ref.reset_classifier(4)
  rng = np.random.default_rng(5)
  w, b = rng.normal(size=(4, 512)).astype(np.float32), rng.normal(size=4).astype(np.float32)
  with torch.no_grad():
    ref.fc.weight.copy_(torch.from_numpy(w))
    ref.fc.bias.copy_(torch.from_numpy(b))
  art = artifact.HeadArtifact(weight=w, bias=b, backbone=d,
                              preprocess=artifact.preprocess_record(backbone.preprocess),
                              features=features.identity(backbone), label_space="four")
  path = str(tmp_path / "rn_head.safetensors")
  artifact.save(art, path)
  m = models.load(f"probe:{path}")
  assert m.describe()["kind"] == "supervised"   # RoZ's supervised CIFAR-10 baseline
  with torch.no_grad():
    np.testing.assert_allclose(np.asarray(m.apply(m.params, jnp.asarray(x))), ref(xt).numpy(),
                               atol=1e-4)
