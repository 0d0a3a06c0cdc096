"""The dry run's parameter count and memory per device (jaxbench.models.footprint).

Figures come from the config alone (``jax.eval_shape``); they are checked against
the arrays a real run places on an 8-device mesh, against a hand count of the
split leaves, and (full-size towers) against open_clip's own model on the meta
device.
"""
import io
import json
import os

import jax
import numpy as np
import open_clip
import pytest
import torch

from tests.models import zoo_helpers as H
from jaxbench import cli, models, parallel
from jaxbench.models import footprint

# An OpenCLIP ViT whose leaves sit on both sides of the FSDP rule's 262,144-element
# threshold: the MLP kernels (256 x 1024) and the token embedding (49408 x 32) are
# split; q/k/v (256 x 256 each), the patch conv (16*16*3*256) and the rest are not.
SMALL = dict(embed_dim=16,
             vision_cfg=dict(image_size=32, layers=1, width=256, patch_size=16, head_width=64),
             text_cfg=dict(context_length=8, vocab_size=49408, width=32, heads=2, layers=1))
SPLIT_BY_HAND = 49408 * 32 + 2 * 256 * 1024     # elements in split leaves


@pytest.fixture(scope="module")
def small_vit(tmp_path_factory):
  """(directory, open_clip model) of SMALL with random weights in the hub layout."""
  d = str(tmp_path_factory.mktemp("footprint") / "vit")
  torch.manual_seed(0)
  ref = open_clip.model.CLIP(**SMALL).eval()
  H.save_openclip(ref, SMALL, d)
  return d, ref


@pytest.mark.parametrize("precision,itemsize", [("float32", 4), ("bfloat16", 2)])
def test_figures_equal_a_hand_count_and_the_arrays_placed_on_the_mesh(small_vit, precision,
                                                                      itemsize):
  d, ref = small_vit
  n = sum(p.numel() for p in ref.parameters())
  fp = footprint.model_footprint(d, precision=precision, model_axis=4)
  assert fp.params == n
  assert fp.bytes_total == n * itemsize                          # bf16 halves it
  assert fp.bytes_per_device == ((n - SPLIT_BY_HAND) + SPLIT_BY_HAND // 4) * itemsize
  rep = footprint.model_footprint(d, precision=precision)
  assert rep.bytes_per_device == rep.bytes_total == n * itemsize
  # What a run holds: the loaded params put on a (data=2, model=4) mesh by the run's rule.
  model = models.load(d, precision=precision)
  placed = parallel.put_params(model.params, parallel.make_mesh(2, 4), "fsdp")
  per_device = {}
  for leaf in jax.tree.leaves(placed):
    for shard in leaf.addressable_shards:
      per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
  assert len(per_device) == 8 and set(per_device.values()) == {fp.bytes_per_device}


@pytest.mark.parametrize("name", ["EVA02-E-14", "ViT-bigG-14"])
def test_full_size_parameter_count_matches_open_clip_on_the_meta_device(tmp_path, name):
  d = tmp_path / name
  d.mkdir()
  (d / "open_clip_config.json").write_text(json.dumps(
      {"model_cfg": open_clip.get_model_config(name)}))     # a config, no weights at all
  with torch.device("meta"):
    ref = open_clip.create_model(name, pretrained=None, device="meta")
  n = sum(p.numel() for p in ref.parameters())
  assert n > 2_000_000_000
  fp = footprint.model_footprint(f"openclip:{d}", precision="bfloat16", model_axis=8)
  assert fp.params == n and fp.bytes_total == 2 * n
  # The FSDP rule splits nearly every byte of these towers 8 ways.
  assert fp.split_fraction > 0.99 and fp.bytes_per_device < 0.13 * fp.bytes_total


def test_warning_when_parameters_exceed_a_device(small_vit):
  d, _ = small_vit
  n = footprint.model_footprint(d).params
  limit = 3 * n                     # < 4n fp32 bytes replicated; > what fsdp over 2 leaves
  kw = dict(precision="float32", n_devices=8, memory=(limit, "test:0"))
  lines = footprint.describe([d], param_sharding="replicate", model_axis=1, **kw)
  assert lines[0].startswith("parameters: precision float32, replicated on every device")
  assert lines[1].startswith(f"  model={d}: {n:,} parameters")
  assert lines[2].startswith(f"  warning: model={d}: its ") and "replicated parameters" \
      in lines[2] and "exceed a device's memory" in lines[2]
  assert lines[2].endswith("config.param_sharding='fsdp' with config.mesh.model=2 fits them")
  ok = footprint.describe([d], param_sharding="fsdp", model_axis=2, **kw)
  assert len(ok) == 2 and "split 2 ways" in ok[1]
  bf16 = footprint.describe([d], param_sharding="replicate", model_axis=1,
                            **dict(kw, precision="bfloat16"))
  assert len(bf16) == 2                                        # 2n bytes fit in 3n
  bad_mesh = footprint.describe([d], param_sharding="fsdp", model_axis=3, **kw)
  assert bad_mesh[1] == ("  warning: config.mesh.model=3 does not divide the 8 devices: the "
                         "run will refuse this mesh")


def test_unsized_models_say_why(tmp_path):
  lines = footprint.describe(["openclip:nobody/not-cached"], precision="float32",
                             param_sharding="replicate", model_axis=1, n_devices=1)
  assert "parameters not sized: open_clip_config.json of 'nobody/not-cached' not found" \
      in lines[1] and "not contacted" in lines[1]


def test_dry_run_prints_each_models_parameters(small_vit, tmp_path):
  from tests.engine.helpers import _write_folder
  from tests.test_configs import _load
  d, ref = small_vit
  folder = _write_folder(str(tmp_path / "data"), n_per_class=1)
  c = _load("zeroshot.py", None, [f"--config.models=('{d}',)", f"--config.data_root={tmp_path}",
                                  f"--config.datasets=(\"image_folder(root={folder!r})\",)",
                                  "--config.precision=bfloat16",
                                  "--config.param_sharding=fsdp", "--config.mesh.model=4"])
  out, err = io.StringIO(), io.StringIO()
  assert cli.execute(c, None, dry_run=True, out=out, err=err) == 0, err.getvalue()
  lines = out.getvalue().splitlines()
  n = sum(p.numel() for p in ref.parameters())
  i = lines.index("parameters: precision bfloat16, fsdp over the mesh's model axis (4 devices)")
  per_device = ((n - SPLIT_BY_HAND) + SPLIT_BY_HAND // 4) * 2
  assert lines[i + 1] == (f"  model={d}: {n:,} parameters ({n / 1e6:.2f}M), "
                          f"{2 * n / 2**30:.3f} GiB in bfloat16, {per_device / 2**30:.3f} GiB "
                          f"per device ({100 * SPLIT_BY_HAND / n:.1f}% of the bytes split 4 "
                          "ways) [eval_shape of OpenCLIP vit]")


def test_unknown_param_sharding_is_refused_in_one_line(small_vit, tmp_path):
  from tests.test_configs import _load
  d, _ = small_vit
  c = _load("zeroshot.py", None, [f"--config.models=('{d}',)", "--config.param_sharding=fdsp"])
  out, err = io.StringIO(), io.StringIO()
  assert cli.execute(c, None, dry_run=True, out=out, err=err) == 2
  assert "config.param_sharding 'fdsp': use 'replicate'" in err.getvalue()
