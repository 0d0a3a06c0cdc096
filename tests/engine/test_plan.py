"""The plan (:mod:`jaxbench.engine.plan`): passes in order, canonical specs, stable pass ids."""
import ml_collections
import pytest

from jaxbench.engine import plan


def _config(**kw):
  c = ml_collections.ConfigDict(dict(
      suite="zeroshot", seed=0, models=("clip_vit_b32",),
      zeroshot=dict(classnames="imagenet", templates="clip80", head="imagenet",
                    logit_scale="model"),
      datasets=("imagenet", "imagenet_r(root='/x')"),
      transforms=("clean", "attack:fgsm(eps=1/255)"),
      dataset_transforms={"imagenet_r": ("shift:imagenet_c(severity=2, corruption='fog')",)},
      batch_size=8))
  c.update(kw)
  return c


def test_passes_are_canonical_and_per_set_transforms_replace_the_list():
  assert plan.plan_passes(_config()) == [
      ("clip_vit_b32", "imagenet", "clean"),
      ("clip_vit_b32", "imagenet", "attack:fgsm(eps=0.00392156862745098)"),
      ("clip_vit_b32", "imagenet_r(root='/x')",
       "shift:imagenet_c(corruption='fog', severity=2)")]
  assert plan.transform_specs(_config()) == [
      "clean", "attack:fgsm(eps=1/255)", "shift:imagenet_c(severity=2, corruption='fog')"]


@pytest.mark.parametrize("extra,want", [
    # Written by jaxbench.runner before the engine split: existing workdirs resume.
    ({}, ["d21481c48ce64a1d", "f288bcdd92149f91", "31e7e47e7fdacb0f"]),
    ({"jpeg_draft": True, "max_examples": 10},
     ["4ff3b6a7f3207dbf", "6f7e08ebb73ffc13", "73db46bec0fd9cb5"]),
])
def test_pass_ids_are_those_of_earlier_versions(extra, want):
  c = _config(**extra)
  assert [plan.pass_id_for(plan.PassSpec(*p), c) for p in plan.plan_passes(c)] == want


def test_volatile_keys_do_not_change_pass_ids():
  base = _config()
  moved = _config(batch_size=64, num_workers=1, checkpoint_every=3, plugins=("x",))
  assert [plan.pass_id_for(plan.PassSpec(*p), base) for p in plan.plan_passes(base)] == \
      [plan.pass_id_for(plan.PassSpec(*p), moved) for p in plan.plan_passes(moved)]
