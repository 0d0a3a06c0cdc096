"""The report on hand-made results rows: every number against a hand computation."""
import base64
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.collections import PathCollection

from jaxbench.metrics import robustness as rb
from jaxbench.report import ReportError, write_report
from jaxbench.report import conventions as conv
from jaxbench.report import results as results_lib

CLIP_PP = ("resize(224,bicubic)|crop(224,center)|norm(mean=(0.48145466, 0.4578275, "
           "0.40821073),std=(0.26862954, 0.26130258, 0.27577711))")
TV_PP = ("resize(256,bilinear)|crop(224,center)|norm(mean=(0.485, 0.456, 0.406),"
         "std=(0.229, 0.224, 0.225))")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sig(z):
  return 1.0 / (1.0 + math.exp(-z))


class Rows:
  """Builds results.jsonl rows the way the runner writes them."""

  def __init__(self):
    self.rows = []

  def add(self, model, dataset, metric, value, *, kind=None, transform="clean",
          suite="natural", preprocess=None, templates="clip80", details=None, n=100):
    kind = kind or ("zeroshot" if model.startswith("clip") else "supervised")
    info = {"kind": kind, "precision": "float32",
            "preprocess": preprocess or (CLIP_PP if kind == "zeroshot" else TV_PP)}
    if kind == "zeroshot":
      info["head"] = {"classnames": "imagenet", "templates": templates}
    self.rows.append({"key": f"{model}|{dataset}|{transform}|{metric}", "model": model,
                      "dataset": dataset, "transform": transform, "suite": suite,
                      "metric": metric, "value": value, "n": n, "details": details or {},
                      "model_info": info,
                      "provenance": {"jax": "0.10.2", "seed": 0, "device_kind": "cpu"}})

  def write(self, workdir):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "results.jsonl"), "w") as f:
      for r in self.rows:
        f.write(json.dumps(r) + "\n")
    return str(workdir)


# Supervised baselines exactly on logit(V2) = 0.9 logit(val) - 0.4 (hand-checkable fit),
# on logit(pm10) = logit(pm0) - 0.5, and on ImageNet-A: resnet50 at 0 % is the pivot.
SUP = {"resnet50_tv": -0.2, "resnet101_tv": 0.5, "timm:efficientnet_b3": 1.2}
ALEX = [0.886428, 0.894468, 0.922640, 0.819880, 0.826268, 0.785948, 0.798360, 0.866816,
        0.826572, 0.819324, 0.564592, 0.853204, 0.646056, 0.717840, 0.606500]
CORR = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
        "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
        "elastic_transform", "pixelate", "jpeg_compression"]


def full_rows() -> Rows:
  r = Rows()
  for m, lx in SUP.items():
    r.add(m, "imagenet(root='/data/val')", "top1", sig(lx))
    r.add(m, "imagenet_v2", "top1", sig(0.9 * lx - 0.4))
    r.add(m, "imagenet_vid_robust", "pm0", sig(lx + 1))
    r.add(m, "imagenet_vid_robust", "pm10", sig(lx + 0.5))
  # ImageNet-A: resnet50 0 % (pivot at its control accuracy sig(2)); others above it.
  r.add("resnet50_tv", "imagenet_val_on_a_classes", "top1", sig(2.0))
  r.add("resnet50_tv", "imagenet_a", "top1", 0.0)
  r.add("resnet101_tv", "imagenet_val_on_a_classes", "top1", sig(2.5))
  r.add("resnet101_tv", "imagenet_a", "top1", sig(-3.0))
  r.add("timm:efficientnet_b3", "imagenet_val_on_a_classes", "top1", sig(3.0))
  r.add("timm:efficientnet_b3", "imagenet_a", "top1", sig(-2.0))
  r.add("clip_rn50", "imagenet_val_on_a_classes", "top1", sig(1.5))
  r.add("clip_rn50", "imagenet_a", "top1", 0.25)
  # CLIP: V2 and video rows; no imagenet_r control -> missing ID axis for R.
  r.add("clip_rn50", "imagenet", "top1", 0.6)
  r.add("clip_rn50", "imagenet_v2", "top1", 0.55)
  r.add("clip_rn50", "imagenet_vid_robust", "pm0", 0.8)
  r.add("clip_rn50", "imagenet_vid_robust", "pm10", 0.7)
  r.add("clip_rn50", "imagenet_r", "top1", 0.6)
  r.add("clip_vit_b32", "imagenet", "top1", 0.63)
  r.add("clip_vit_b32", "imagenet_v2", "top1", 0.56)
  # CLIP-Auto run of clip_rn50, labelled by the runner as spec@options.
  auto = "clip_rn50@templates=learned:auto"
  r.add(auto, "imagenet", "top1", 0.61, suite="clip_auto", templates="learned:auto")
  r.add(auto, "imagenet_v2", "top1", 0.57, suite="clip_auto", templates="learned:auto")
  # ImageNet-C on disk for resnet50 (all 15 x 5) and clip_rn50 (fog only).
  for ci, c in enumerate(CORR):
    for s in range(1, 6):
      r.add("resnet50_tv", f"imagenet_c(corruption='{c}', severity={s})", "top1",
            0.7 - 0.1 * s + 0.01 * ci, suite="synthetic")
  for s in range(1, 6):
    r.add("clip_rn50", f"imagenet_c(corruption='fog', severity={s})", "top1",
          0.5 - 0.05 * s, suite="synthetic")
  # Generated corruption on another set (no mCE there).
  r.add("clip_rn50", "cifar10", "top1", 0.9, suite="synthetic")
  r.add("clip_rn50", "cifar10", "top1", 0.7, suite="synthetic",
        transform="shift:fog(severity=3)")
  # ImageNet-P: alexnet reference and resnet50.
  for m, fp in (("alexnet_tv", {"rotate": 0.2, "scale": 0.1}),
                ("resnet50_tv", {"rotate": 0.1, "scale": 0.08})):
    for p, v in fp.items():
      r.add(m, f"imagenet_p(perturbation='{p}', difficulty=1)", "flip_prob", v,
            suite="synthetic")
      r.add(m, f"imagenet_p(perturbation='{p}', difficulty=2)", "flip_prob", v / 2,
            suite="synthetic")
  # Attacks: bim at 1, 2, 4 /255, clean_acc once per eps row.
  for m, clean in (("clip_rn50", 0.6), ("resnet50_tv", 0.76)):
    for e in (1, 2, 4):
      t = f"attack:bim(eps={e}/255, space='normalized')"
      r.add(m, "imagenet", "robust_acc", clean - 0.1 * e, transform=t, suite="adv")
      r.add(m, "imagenet", "clean_acc", clean, transform=t, suite="adv")
      r.add(m, "imagenet", "success_rate", 0.1 * e / clean, transform=t, suite="adv")
      r.add(m, "imagenet", "median_linf", e / 255, transform=t, suite="adv")
  # Typographic.
  r.add("clip_rn50", "imagenet_t(root='/t')", "top1", 0.2, suite="typographic")
  r.add("clip_rn50", "imagenet_t(root='/t')", "success_rate", 0.6, suite="typographic")
  r.add("resnet50_tv", "imagenet_t(root='/t')", "top1", 0.7, suite="typographic")
  r.add("resnet50_tv", "imagenet_t(root='/t')", "success_rate", 0.05, suite="typographic")
  r.add("resnet50_tv", "imagenet_t(root='/t')", "top1/true_class", 0.74, suite="typographic")
  # Overlap.
  r.add("clip_rn50", "imagenet_r", "overlap_rate", 0.1, suite="overlap")
  r.add("clip_rn50", "imagenet_r", "acc_overlap", 0.8, suite="overlap")
  r.add("clip_rn50", "imagenet_r", "acc_clean_subset", 0.58, suite="overlap")
  # A suite the report does not know.
  r.add("resnet50_tv", "imagenet", "top1", 0.5, suite="mystery", transform="shift:swirl")
  return r


@pytest.fixture(scope="module")
def full(tmp_path_factory):
  wd = full_rows().write(tmp_path_factory.mktemp("full"))
  # The hand-made baselines of these rows are the point: make them the primary fit.
  rep = write_report(wd, baseline="user")
  return wd, rep


def table(rep, name):
  (t,) = [t for t in rep.tables if t.name == name]
  return t


def fig(rep, name):
  (f,) = [f for f in rep.figures if f.name == name]
  return f


def test_effective_robustness_user_baseline_hand(full):
  _, rep = full
  (v2,) = [s for s in rep.shifts if s.name == "imagenet_v2"]
  assert v2.fit_source == "user"
  assert v2.fit.lines[0] == pytest.approx((0.9, -0.4), abs=1e-12)
  t = table(rep, "effective_robustness")
  # clip_rn50: rho = 0.55 - sigmoid(0.9 logit(0.6) - 0.4).
  want = 0.55 - sig(0.9 * math.log(0.6 / 0.4) - 0.4)
  label = "clip_rn50"
  assert t.get(label, "ImageNetV2") == pytest.approx(want, abs=1e-12)
  assert t.get("resnet101_tv", "ImageNetV2") == pytest.approx(0.0, abs=1e-12)
  drop = table(rep, "accuracy_drop")
  assert drop.get(label, "ImageNetV2") == pytest.approx(0.05, abs=1e-12)
  # CLIP-Auto's variant (0.61 -> 0.57) lies furthest above the line.
  assert t.best("ImageNetV2") == {"clip_rn50@templates=learned:auto"}


def test_pm_k_axis_uses_pm0_as_x_and_pm10_as_y(full):
  _, rep = full
  (vid,) = [s for s in rep.shifts if s.name == "imagenet_vid_robust"]
  label = "clip_rn50"
  assert vid.points[label] == (0.8, 0.7)
  assert vid.fit.lines[0] == pytest.approx((1.0, -0.5), abs=1e-12)
  want = 0.7 - sig(math.log(0.8 / 0.2) - 0.5)
  assert vid.rho[label] == pytest.approx(want, abs=1e-12)
  assert vid.drop[label] == pytest.approx(0.1, abs=1e-12)


def test_zero_percent_baseline_becomes_a_pivot(full):
  _, rep = full
  (a,) = [s for s in rep.shifts if s.name == "imagenet_a"]
  assert a.fit.pivots == (pytest.approx(sig(2.0)),)
  assert "resnet50_tv" not in a.fit.baselines
  # Only one baseline below the pivot: the lower side falls back to the overall line
  # through resnet101 (2.5, -3) and effnet (3, -2): slope 2, intercept -8.
  assert a.fit.lines[0] == pytest.approx((2.0, -8.0), abs=1e-12)
  label = "clip_rn50"
  assert a.rho[label] == pytest.approx(0.25 - sig(2 * 1.5 - 8), abs=1e-12)


def test_zero_percent_baseline_is_left_off_the_logit_plot(full):
  _, rep = full
  f = fig(rep, "effrob_imagenet_a")
  assert f.data["skipped"] == ["resnet50_tv"]       # 0 % has no place on logit axes
  assert f.points == 3
  ax = f.figure.axes[0]
  offsets = np.concatenate([c.get_offsets() for c in ax.collections
                            if isinstance(c, PathCollection) and
                            not c.get_label().startswith("testbed:")])
  assert len(offsets) == 3
  got = sorted(map(tuple, np.round(offsets, 9)))
  want = sorted((round(x, 9), round(y, 9)) for x, y in
                [(2.5, -3.0), (3.0, -2.0), (1.5, math.log(0.25 / 0.75))])
  np.testing.assert_allclose(got, want, atol=1e-9)


def test_scatter_marks_zeroshot_and_supervised_apart(full):
  _, rep = full
  f = fig(rep, "effrob_imagenet_v2")
  assert {k: len(v) for k, v in f.data["points"].items()} == {"supervised": 3,
                                                               "zeroshot": 3}
  markers = {c.get_label(): len(c.get_offsets()) for c in f.figure.axes[0].collections
             if isinstance(c, PathCollection) and not c.get_label().startswith("testbed:")}
  assert markers == {"supervised": 3, "zero-shot": 3}


def test_scatter_draws_the_baseline_fit_line(full):
  _, rep = full
  f = fig(rep, "effrob_imagenet_v2")
  # The drawn fit line is the baseline's beta.
  np.testing.assert_allclose(f.data["fit_y"],
                             rb.sigmoid(0.9 * rb.logit(f.data["fit_x"]) - 0.4), atol=1e-12)


def test_testbed_baseline_is_default_and_user_fit_is_a_labelled_second_table(tmp_path):
  r = Rows()
  for m, lx in SUP.items():
    r.add(m, "imagenet", "top1", sig(lx))
    r.add(m, "imagenet_v2", "top1", sig(0.9 * lx - 0.4))
  r.add("clip_rn50", "imagenet", "top1", 0.5981)
  r.add("clip_rn50", "imagenet_v2", "top1", 0.5259)
  wd = r.write(tmp_path / "wd")
  (a, b), = rb.load_testbed_fits()["imagenet_v2"].lines
  want_tb = 0.5259 - sig(a * math.log(0.5981 / 0.4019) + b)
  want_user = 0.5259 - sig(0.9 * math.log(0.5981 / 0.4019) - 0.4)
  # Three supervised models no longer replace the testbed fit, with 'auto' or without.
  for mode in (None, "auto", "testbed"):
    kw = {} if mode is None else {"baseline": mode}
    rep = write_report(wd, str(tmp_path / f"m{mode}"), **kw)
    (v2,) = rep.shifts
    assert v2.fit_source == "testbed" and v2.testbed_key == "imagenet_v2"
    assert len(v2.fit.baselines) == 85
    t = table(rep, "effective_robustness")
    assert "ImageNet testbed fit" in t.title
    assert t.get("clip_rn50", "ImageNetV2") == pytest.approx(want_tb, abs=1e-12)
    u = table(rep, "effective_robustness_user")
    assert "your supervised models" in u.title
    assert u.get("clip_rn50", "ImageNetV2") == pytest.approx(want_user, abs=1e-12)
    assert u.notes == ["ImageNetV2: fit over 3 models: resnet101_tv (supervised), "
                       "resnet50_tv (supervised), timm:efficientnet_b3 (supervised)"]
    fits = table(rep, "baseline_fits")
    assert fits.get("ImageNetV2 [testbed]", "models") == "85"
    assert fits.get("ImageNetV2 [testbed]", "baseline").endswith("(primary)")
    assert fits.get("ImageNetV2 [user]", "models") == "3"
  text = open(rep.files["report.md"]).read()
  assert "baseline: ImageNet testbed fit" in text and "baseline: fit over your" in text
  # The testbed's published rows sit beside the user's for the same architectures.
  peers = table(rep, "effective_robustness_vs_testbed")
  assert peers.rows.index("resnet50_tv") + 1 == peers.rows.index("testbed: resnet50")
  assert peers.rows.index("clip_rn50") + 1 == peers.rows.index(
      "testbed: resnet50_clip_zeroshot")
  from jaxbench.report import fit_coefficients as fc
  names, cols = fc.read_testbed()
  i = names.index("resnet50_clip_zeroshot")
  x, y = cols["val"][i] / 100, cols["imagenetv2-matched-frequency-format-val"][i] / 100
  assert peers.get("testbed: resnet50_clip_zeroshot", "ImageNetV2") == pytest.approx(
      y - sig(a * math.log(x / (1 - x)) + b), abs=1e-12)
  accs = table(rep, "accuracy_vs_testbed")
  assert accs.get("testbed: resnet50_clip_zeroshot", "ImageNetV2 OOD") == pytest.approx(y)
  assert accs.get("testbed: resnet50_clip_zeroshot", "ImageNetV2 ID") == pytest.approx(x)
  assert accs.get("clip_rn50", "ImageNetV2 ID") == pytest.approx(0.5981)
  assert accs.rows == peers.rows
  # The user baseline as primary, on request; too few models: a named message.
  rep = write_report(wd, str(tmp_path / "user"), baseline="user")
  (v2,) = rep.shifts
  assert v2.fit_source == "user"
  assert table(rep, "effective_robustness").get("clip_rn50", "ImageNetV2") == \
      pytest.approx(want_user, abs=1e-12)
  assert table(rep, "effective_robustness_testbed").get("clip_rn50", "ImageNetV2") == \
      pytest.approx(want_tb, abs=1e-12)
  rep = write_report(wd, str(tmp_path / "user2"), baseline="user",
                     baseline_models=["resnet50_tv", "resnet101_tv"])
  (v2,) = rep.shifts
  assert v2.fit is None and "at least 3 supervised models" in v2.message
  assert "testbed fit" in v2.message   # says where the other baseline is
  assert any(c == "ImageNetV2" and "at least 3 supervised" in why
             for _, _, c, why in rep.missing)
  text = open(rep.files["report.md"]).read()
  assert "needs at least 3 supervised models" in text


def test_effective_figure_draws_the_testbed_models_band_and_identity(tmp_path):
  from jaxbench.report import fit_coefficients as fc
  r = Rows()
  r.add("clip_rn50", "imagenet_val_on_objectnet_classes", "top1", 0.66848)
  r.add("clip_rn50", "objectnet", "top1", 0.40283)
  rep = write_report(r.write(tmp_path / "wd"), str(tmp_path / "out"))
  f = fig(rep, "effrob_objectnet")
  back = f.data["background"]
  # Every testbed model its ObjectNet figure shows, coloured by its testbed type.
  want = [p for p in fc.plotted_points("objectnet")]
  assert sum(len(v) for v in back.values()) == len(want) > 200
  assert {n for v in back.values() for n, _, _ in v} == {p[0] for p in want}
  assert dict((n, t) for t, v in back.items() for n, _, _ in v)["resnet50"] == "STANDARD"
  colors = {c.get_label(): c.get_facecolor()[0][:3] for c in f.figure.axes[0].collections
            if isinstance(c, PathCollection)}
  from matplotlib.colors import to_rgb
  assert colors["testbed: Standard training"] == pytest.approx(to_rgb("tab:blue"))
  assert colors["testbed: Trained with more data"] == pytest.approx(to_rgb("tab:green"))
  # ObjectNet's testbed figure uses NatModelTypes: Lp-adversarial models are drawn as
  # 'Robustness intervention' (brown), as the testbed's paper_objectnet.py does.
  assert colors["testbed: Robustness intervention"] == pytest.approx(to_rgb("tab:brown"))
  assert "testbed: Lp adversarially robust" not in colors
  assert dict((n, t) for t, v in back.items() for n, _, _ in v)[
      "resnet50_l2_eps3_robust"] == "ROBUST_INTV"
  # The user's model sits in front of the testbed's points.
  zs = {c.get_label(): c.get_zorder() for c in f.figure.axes[0].collections}
  assert zs["zero-shot"] > zs["testbed: Standard training"]
  # The band: 1000 bootstrap refits of the 85 line-fit models (seed of the testbed),
  # recomputed here with the testbed's own loop; it brackets the fit line.
  pts = fc.line_fit_points("objectnet")
  lx = np.log(np.array([p[1] for p in pts]) / (100 - np.array([p[1] for p in pts])))
  ly = np.log(np.array([p[2] for p in pts]) / (100 - np.array([p[2] for p in pts])))
  grid = rb.logit(f.data["fit_x"])
  rng = np.random.RandomState(720257663)
  vals = []
  for _ in range(1000):
    i = rng.choice(len(lx), len(lx))
    c = np.linalg.lstsq(np.stack([np.ones(len(i)), lx[i]], 1), ly[i], rcond=None)[0]
    vals.append(c[0] + c[1] * grid)
  lo = np.percentile(vals, 2.5, axis=0, method="lower")
  hi = np.percentile(vals, 97.5, axis=0, method="higher")
  np.testing.assert_allclose(rb.logit(f.data["band_lo"]), lo, atol=1e-9)
  np.testing.assert_allclose(rb.logit(f.data["band_hi"]), hi, atol=1e-9)
  assert np.all(f.data["band_lo"] <= f.data["fit_y"]) and np.all(f.data["fit_y"] <= f.data["band_hi"])
  assert any(l.get_label() == "y = x" for l in f.figure.axes[0].get_lines())


def test_relative_robustness_default_pairs(full):
  wd, rep = full
  t = table(rep, "relative_robustness")
  # RoZ alias pair RN50 => ResNet-50 resolves to clip_rn50 (plain variant) and resnet50_tv.
  row = "RN50 => ResNet-50"
  assert t.get(row, "ImageNetV2") == pytest.approx(0.55 - sig(0.9 * -0.2 - 0.4), abs=1e-12)
  auto_row = "clip_rn50@templates=learned:auto => clip_rn50"
  assert t.get(auto_row, "ImageNetV2") == pytest.approx(0.02, abs=1e-12)
  assert t.get("RN101 => ResNet-101", "ImageNetV2") is None
  assert any(r == "RN101 => ResNet-101" and "no zeroshot model matches" in why
             for _, r, _, why in rep.missing)
  d = table(rep, "relative_effective_robustness")
  lx = lambda p: math.log(p / (1 - p))
  rho_w = 0.57 - sig(0.9 * lx(0.61) - 0.4)
  rho_wo = 0.55 - sig(0.9 * lx(0.6) - 0.4)
  assert d.get(auto_row, "ImageNetV2") == pytest.approx(rho_w - rho_wo, abs=1e-12)


def test_relative_robustness_explicit_pairs(tmp_path):
  small = Rows()
  for m, lx in SUP.items():
    small.add(m, "imagenet", "top1", sig(lx))
    small.add(m, "imagenet_v2", "top1", sig(0.9 * lx - 0.4))
  small.add("clip_vit_b32", "imagenet", "top1", 0.63)
  small.add("clip_vit_b32", "imagenet_v2", "top1", 0.56)
  rep2 = write_report(small.write(tmp_path / "small"), str(tmp_path / "pairs"),
                      pairs=["clip_vit_b32=>resnet101_tv"])
  t2 = table(rep2, "relative_robustness")
  assert t2.rows == ["clip_vit_b32 => resnet101_tv"]
  assert t2.get(t2.rows[0], "ImageNetV2") == pytest.approx(0.56 - sig(0.9 * 0.5 - 0.4))


def test_mce_and_relative_mce_hand(full):
  _, rep = full
  t = table(rep, "corruptions_imagenet_c")
  # resnet50: err_c = 1 - mean_s(0.7 - 0.1 s + 0.01 c) = 0.6 - 0.01 c; clean err = 1 - sig(-0.2).
  clean_err = 1 - sig(-0.2)
  ce = [100 * (0.6 - 0.01 * i) / ALEX[i] for i in range(15)]
  # AlexNet's clean error: torchvision's AlexNet, 56.522 % top-1 (one constant, issue 18).
  rel = [100 * ((0.6 - 0.01 * i) - clean_err) / (ALEX[i] - (1 - 0.56522))
         for i in range(15)]
  assert t.get("resnet50_tv", "mCE") == pytest.approx(np.mean(ce), abs=1e-9)
  assert t.get("resnet50_tv", "relative mCE") == pytest.approx(np.mean(rel), abs=1e-9)
  assert t.get("resnet50_tv", "fog") == pytest.approx(0.4 + 0.01 * CORR.index("fog"))
  label = "clip_rn50"
  assert t.get(label, "fog") == pytest.approx(0.35)
  assert t.get(label, "mCE") is None
  assert any(r == label and c == "mCE" and "missing gaussian_noise" in why
             for _, r, c, why in rep.missing)
  f = fig(rep, "severity_imagenet_c")
  # resnet50: 15 corruptions x (clean + 5 severities); clip: fog x (clean + 5).
  assert f.points == 15 * 6 + 6
  assert f.data["fog"][label] == [(0, 0.6)] + [(s, pytest.approx(0.5 - 0.05 * s))
                                               for s in range(1, 6)]
  lines = sum(len(ax.get_lines()) for ax in f.figure.axes)
  assert lines == 15 + 1
  # Generated corruption on cifar10 is a family of its own, never mixed with on-disk.
  g = table(rep, "corruptions_cifar10_generated")
  assert g.get(label, "fog") == pytest.approx(0.7) and "mCE" not in g.columns


def test_mfr_normalised_by_alexnet(full):
  _, rep = full
  t = table(rep, "imagenet_p_flip_prob")
  # Mean over difficulties: alexnet rotate 0.15, scale 0.075; resnet50 0.075, 0.06.
  assert t.get("resnet50_tv", "rotate") == pytest.approx(0.075)
  part = "mFR (evaluated perturbations)"
  assert t.get("resnet50_tv", part) == pytest.approx(100 * (0.075 / 0.15 + 0.06 / 0.075) / 2)
  assert t.get("alexnet_tv", part) == pytest.approx(100.0)
  # mFR proper averages the ten test perturbations: two evaluated, eight named missing.
  assert t.get("resnet50_tv", "mFR") is None
  (why,) = [w for _, r, c, w in rep.missing if r == "resnet50_tv" and c == "mFR"]
  assert why.startswith("mFR averages the 10 ImageNet-P test perturbations; missing "
                        "perturbations gaussian_noise, shot_noise, motion_blur, zoom_blur, "
                        "snow, brightness, translate, tilt")
  assert any("resnet50_tv: mFR (evaluated perturbations) over rotate, scale only" in n
             for n in t.notes)


def test_adversarial_tables(full):
  _, rep = full
  t = table(rep, "adv_robust_acc")
  col = "bim(space='normalized') eps=2/255"
  label = "clip_rn50"
  assert t.get(label, col) == pytest.approx(0.4)
  assert t.get("resnet50_tv", "clean accuracy") == pytest.approx(0.76)
  assert t.best(col) == {"resnet50_tv"}
  s = table(rep, "adv_success_rate")
  assert s.best(col) == {"resnet50_tv"}           # lower success rate is better
  other = table(rep, "adv_other_metrics")
  assert other.get("resnet50_tv", "bim(space='normalized') eps=4/255 median_linf") == \
      pytest.approx(4 / 255)


def test_robust_accuracy_curves_against_epsilon(full):
  _, rep = full
  f = fig(rep, "robust_acc_vs_eps")
  panel = f.data["bim(space='normalized')"]
  assert panel["resnet50_tv"] == [(0.0, 0.76)] + [
      (pytest.approx(e / 255), pytest.approx(0.76 - 0.1 * e)) for e in (1, 2, 4)]
  assert f.points == 8
  xs = f.figure.axes[0].get_lines()[0].get_xdata()
  np.testing.assert_allclose(xs, [0, 1, 2, 4])       # drawn in 1/255 units


def test_typographic_and_overlap(full):
  _, rep = full
  t = table(rep, "typographic")
  name = "imagenet_t"
  label = "clip_rn50"
  assert t.get(label, f"{name} clean") == pytest.approx(0.6)
  assert t.get(label, f"{name} drop") == pytest.approx(0.4)
  assert t.get(label, f"{name} ASR") == pytest.approx(0.6)
  assert t.get("resnet50_tv", f"{name} drop") == pytest.approx(sig(-0.2) - 0.7)
  # The per-variant metric gets its own column group; its drop uses the same clean top-1.
  assert t.get("resnet50_tv", "imagenet_t [true_class] drop") == pytest.approx(
      sig(-0.2) - 0.74)
  assert t.get(label, "imagenet_t [true_class] acc") is None
  f = fig(rep, "typographic_bars")
  assert f.points == 6 + 2     # set: 2 models x 3 bars; true_class: resnet50 clean + acc
  bars = [p for ax in f.figure.axes[:1] for p in ax.patches]
  assert sorted(round(b.get_height(), 9) for b in bars) == sorted(
      round(100 * v, 9) for v in (0.6, 0.2, 0.6, sig(-0.2), 0.7, 0.05))
  o = table(rep, "overlap")
  assert o.get(label, "imagenet_r overlapping - clean") == pytest.approx(0.22)
  assert o.get(label, "imagenet_r all") == pytest.approx(0.6)


def test_report_files_are_written(full):
  wd, rep = full
  out = os.path.join(wd, "report")
  assert rep.out_dir == out
  for name in ("report.md", "report.html", "missing.csv", "tables/effective_robustness.csv",
               "figures/effrob_imagenet_v2.png"):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  for f in rep.figures:
    with open(os.path.join(out, "figures", f"{f.name}.png"), "rb") as fh:
      assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_html_report_is_self_contained(full):
  _, rep = full
  html = open(rep.files["report.html"]).read()
  refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)['"]""", html, flags=re.I)
  assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
  assert not re.search(r"<script|<link|@import|url\(|<iframe|<object|<embed", html, re.I)
  assert len(refs) == len(rep.figures)
  for r in refs:
    assert base64.b64decode(r.split(",", 1)[1])[:4] == b"\x89PNG"
  md = open(rep.files["report.md"]).read()
  assert "## Missing cells" in md and "## Provenance" in md and "## Row conventions" in md
  # clip_rn50 has imagenet_r but no val-on-R control: listed, not crashing.
  assert any(r == "clip_rn50" and "imagenet_val_on_r_classes" in why
             for t, r, c, why in rep.missing if t == "effective_robustness")
  assert "unknown suite 'mystery'" in " ".join(rep.notes)
  other = table(rep, "other_results")
  assert other.get("resnet50_tv", "mystery (unknown suite): imagenet | shift:swirl | top1") \
      == 0.5
  # The best cell is bold in Markdown.
  assert "**+" in md


def test_variants_separated_or_refused(tmp_path):
  r = Rows()
  r.add("clip_b32", "imagenet", "top1", 0.60)
  r.add("clip_b32", "imagenet", "top1", 0.62, preprocess=CLIP_PP.replace("bicubic",
                                                                           "bilinear"))
  r.add("clip_b32", "imagenet_v2", "top1", 0.55, templates="7 templates")
  wd = r.write(tmp_path / "wd")
  rs = results_lib.load([wd])
  assert len(rs.models) == 3                      # never averaged into one cell
  vals = sorted(rs.value(l, "imagenet", "clean", "top1") or 0 for l in rs.models)
  assert vals == [0, 0.60, 0.62]
  assert any("bilinear" in l for l in rs.models) and any("7 templates" in l for l in rs.models)
  with pytest.raises(ReportError) as e:
    write_report(wd, str(tmp_path / "out"), variants="refuse")
  msg = str(e.value)
  assert "'clip_b32'" in msg and "preprocess" in msg and "templates" in msg
  assert "resize(224,bilinear)" in msg and "'7 templates'" in msg


def test_duplicates_across_workdirs_are_noted_not_averaged(tmp_path):
  a, b = Rows(), Rows()
  a.add("resnet50_tv", "imagenet", "top1", 0.70)
  b.add("resnet50_tv", "imagenet", "top1", 0.72)
  rs = results_lib.load([a.write(tmp_path / "a"), b.write(tmp_path / "b")])
  assert rs.value("resnet50_tv", "imagenet", "clean", "top1") == 0.72
  assert any("duplicate cell" in n and "0.7 " in n and "0.72" in n for n in rs.notes)


def test_bad_input_errors_name_the_problem(tmp_path):
  with pytest.raises(ReportError, match="results.jsonl does not exist"):
    write_report(str(tmp_path / "nothing"))
  wd = tmp_path / "bad"
  os.makedirs(wd)
  path = wd / "results.jsonl"
  path.write_text('{"model": "m", "dataset": "imagenet", "transform": "clean", '
                  '"metric": "top1", "value": 0.5}\n{"model": "m", oops\n')
  with pytest.raises(ReportError, match=r"results.jsonl:2: not a JSON object"):
    write_report(str(wd))
  path.write_text('{"model": "m", "dataset": "imagenet", "transform": "clean", '
                  '"value": 0.5}\n')
  with pytest.raises(ReportError, match=r":1: row lacks required key 'metric'"):
    write_report(str(wd))
  path.write_text('{"model": "m", "dataset": "imagenet", "transform": "clean", '
                  '"metric": "top1", "value": 76.1}\n')
  with pytest.raises(ReportError, match=r"'top1' = 76.1 is outside \[0, 1\]"):
    write_report(str(wd))
  path.write_text('{"model": "m", "dataset": "imagenet", "transform": "clean", '
                  '"metric": "top1", "value": "high"}\n')
  with pytest.raises(ReportError, match="'value' must be a number, got 'high'"):
    write_report(str(wd))
  with pytest.raises(ValueError, match="'a,b': expected 'WITH=>WITHOUT'"):
    write_report(str(tmp_path / "nothing"), pairs=["a,b"])


def test_conventions_parsers():
  assert conv.dataset_label("imagenet_v2(variant='matched-frequency', root='/x')") == \
      "imagenet_v2(variant='matched-frequency')"
  assert conv.corruption_of("imagenet_c(corruption='fog', severity=3, root='/d')",
                            "clean") == ("imagenet_c", "fog", 3)
  assert conv.corruption_of("imagenet", "shift:fog(severity=2)") == (
      "imagenet+generated", "fog", 2)
  assert conv.corruption_of("imagenet", "shift:imagenet_c(corruption='snow', severity=4)") \
      == ("imagenet+generated", "snow", 4)
  assert conv.corruption_of("imagenet", "clean", {"corruption": "fog", "severity": 1}) is None
  assert conv.attack_of("attack:pgd(eps=0.5, norm='l2', steps=10)") == (
      "pgd(norm='l2', steps=10)", 0.5)
  assert conv.attack_of("attack:deepfool", {"eps": 0.03}) == ("deepfool", 0.03)
  assert conv.perturbation_of("imagenet_p(perturbation='tilt', difficulty=2)", "clean") == (
      "tilt", 2)
  assert conv.canonical_metric("PM-10") == "pm10" and conv.canonical_metric("asr") == \
      "success_rate"


def test_command_line(tmp_path):
  r = Rows()
  for m, lx in SUP.items():
    r.add(m, "imagenet", "top1", sig(lx))
  wd = r.write(tmp_path / "wd")
  out = subprocess.run([sys.executable, "-m", "jaxbench.report", f"--workdir={wd}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert out.returncode == 0, out.stderr
  assert os.path.exists(os.path.join(wd, "report", "report.html"))
  bad = subprocess.run([sys.executable, "-m", "jaxbench.report",
                        f"--workdir={tmp_path / 'none'}"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
  assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_imagenet_c_per_corruption_against_the_testbed_fit(full):
  _, rep = full
  by = {s.name: s for s in rep.shifts}
  fog = by["imagenet_c_fog"]
  assert fog.testbed_key == "imagenet_c.fog.on-disk" and not fog.figure
  (a, b), = rb.load_testbed_fits()["imagenet_c.fog.on-disk"].lines
  ci = CORR.index("fog")
  y = np.mean([0.7 - 0.1 * s + 0.01 * ci for s in range(1, 6)])
  x = sig(SUP["resnet50_tv"])
  assert fog.points["resnet50_tv"] == pytest.approx((x, y), abs=1e-12)
  assert fog.rhos["testbed"]["resnet50_tv"] == pytest.approx(
      y - sig(a * math.log(x / (1 - x)) + b), abs=1e-12)
  # clip_rn50 has fog only: it is scored on fog, and missing from the family mean.
  assert fog.points["clip_rn50"] == pytest.approx((0.6, 0.35), abs=1e-12)
  assert "clip_rn50" in by["imagenet_c_mean"].missing
  # The family mean is over 15 corruptions, the testbed's over 19: no testbed fit.
  mean = by["imagenet_c_mean"]
  assert "testbed" not in mean.fits and "19 corruptions" in mean.messages["testbed"]
  # The family mean is one number: the shift's y value is the corruption table's
  # "mean (all settings)", and both are the hand mean over the 15 x 5 settings.
  hand = np.mean([0.7 - 0.1 * s + 0.01 * ci for ci in range(len(CORR)) for s in range(1, 6)])
  assert mean.points["resnet50_tv"][1] == pytest.approx(hand, abs=1e-12)
  assert table(rep, "corruptions_imagenet_c").get("resnet50_tv", "mean (all settings)") == \
      mean.points["resnet50_tv"][1]
  t = table(rep, "effective_robustness_testbed")
  assert t.get("resnet50_tv", fog.title) == pytest.approx(fog.rhos["testbed"]["resnet50_tv"])
  assert not any(f.name == "effrob_imagenet_c_fog" for f in rep.figures)


def test_testbed_accuracies_as_results_reproduce_the_testbed_rule(tmp_path):
  """Issue 18: the testbed's own accuracies for RoZ's models, fed as results rows, get
  the testbed-rule effective robustness on every natural shift in the default report,
  even with >= 3 supervised models present (which used to replace the testbed fit)."""
  from jaxbench.report import fit_coefficients as fc
  names, cols = fc.read_testbed()
  models = {"clip_rn50": "resnet50_clip_zeroshot", "clip_vit_b32": "vit_b_32_clip_zeroshot",
            "resnet50_tv": "resnet50", "resnet101_tv": "resnet101",
            "timm:efficientnet_b3": "efficientnet-b3", "timm:vit_base_patch32_384":
            "vit_base_patch32_384"}
  rows_of = {  # jaxbench (dataset, metric) -> testbed column
      ("imagenet", "top1"): "val",
      ("imagenet_v2", "top1"): "imagenetv2-matched-frequency-format-val",
      ("imagenet_sketch", "top1"): "imagenet-sketch",
      ("stylized_imagenet", "top1"): "stylized_imagenet",
      ("imagenet_val_on_r_classes", "top1"): "val-on-imagenet-r-classes",
      ("imagenet_r", "top1"): "imagenet-r",
      ("imagenet_val_on_a_classes", "top1"): "val-on-imagenet-a-classes",
      ("imagenet_a", "top1"): "imagenet-a",
      ("imagenet_val_on_objectnet_classes", "top1"): "val-on-objectnet-classes",
      ("objectnet", "top1"): "objectnet-1.0-beta",
      ("imagenet_vid_robust", "pm0"): "imagenet-vid-robust_pm0",
      ("imagenet_vid_robust", "pm10"): "imagenet-vid-robust_pm10",
      ("ytbb_robust", "pm0"): "ytbb-robust_pm0",
      ("ytbb_robust", "pm10"): "ytbb-robust_pm10"}
  r = Rows()
  for label, tb in models.items():
    i = names.index(tb)
    for (ds, metric), col in rows_of.items():
      if np.isfinite(cols[col][i]):
        r.add(label, ds, metric, float(cols[col][i]) / 100)
  rep = write_report(r.write(tmp_path / "wd"), str(tmp_path / "out"))
  fits = rb.load_testbed_fits()
  checked = 0
  for sr in rep.shifts:
    if not sr.testbed_key:
      continue
    assert sr.fit_source == "testbed" and "user" in sr.fits   # 4 supervised models
    xc, yc, _ = fc.SHIFT_COLUMNS[sr.testbed_key]
    for label, tb in models.items():
      i = names.index(tb)
      if label not in sr.points:
        continue
      x, y = cols[xc][i] / 100, cols[yc][i] / 100
      assert sr.points[label] == pytest.approx((x, y), abs=1e-12)
      want = y - float(fits[sr.testbed_key].beta(x))
      assert 100 * abs(sr.rho[label] - want) < 0.1 and sr.rho[label] == pytest.approx(want)
      checked += 1
  assert checked >= 40
  (obj,) = [s for s in rep.shifts if s.name == "objectnet"]
  assert 100 * obj.rho["clip_rn50"] == pytest.approx(17.85, abs=0.05)
  # The fit over the user's four supervised models is a different number, shown apart.
  assert abs(100 * obj.rhos["user"]["clip_rn50"] - 17.85) > 1


def test_two_image_folders_are_two_columns(tmp_path):
  r = Rows()
  r.add("resnet50_tv", "image_folder(root='/data/cats')", "top1", 0.40)
  r.add("resnet50_tv", "image_folder(root='/data/dogs/')", "top1", 0.70)
  # Equal basenames: more of the path tells them apart.
  r.add("resnet50_tv", "image_folder(root='/x/a/val')", "top1", 0.10)
  r.add("resnet50_tv", "image_folder(root='/x/b/val')", "top1", 0.20)
  r.add("resnet50_tv", "image_folder(root='/x/c/val', folder_kind='name')", "top1", 0.30)
  # The same folder written two ways is one dataset (later row wins, with a note).
  r.add("clip_b32", "image_folder(root='/data/cats')", "top1", 0.50)
  r.add("clip_b32", "image_folder('/data/cats/')", "top1", 0.55)
  rs = results_lib.load([r.write(tmp_path / "wd")])
  assert rs.value("resnet50_tv", "image_folder [cats]", "clean", "top1") == 0.40
  assert rs.value("resnet50_tv", "image_folder [dogs]", "clean", "top1") == 0.70
  assert rs.value("resnet50_tv", "image_folder [a/val]", "clean", "top1") == 0.10
  assert rs.value("resnet50_tv", "image_folder [b/val]", "clean", "top1") == 0.20
  assert rs.value("resnet50_tv", "image_folder(folder_kind='name') [val]", "clean",
                  "top1") == 0.30
  assert rs.value("clip_b32", "image_folder [cats]", "clean", "top1") == 0.55
  dup = [n for n in rs.notes if "duplicate cell" in n]
  assert len(dup) == 1 and "clip_b32" in dup[0], rs.notes
  report = write_report(str(tmp_path / "wd"), str(tmp_path / "out"))
  (table,) = [t for t in report.tables if t.name == "clean_and_natural"]
  assert {"image_folder [cats]", "image_folder [dogs]", "image_folder [a/val]"} <= \
      set(table.columns)
  assert table.values[("resnet50_tv", "image_folder [dogs]")] == 0.70


def test_dataset_labels_disambiguate_by_path():
  labels = conv.dataset_labels(["image_folder(root='/p/q/val')", "image_folder(root='/r/q/val')",
                                "imagenet(root='/a')", "imagenet(root='/b')"])
  assert labels["image_folder(root='/p/q/val')"] == "image_folder [p/q/val]"
  assert labels["image_folder(root='/r/q/val')"] == "image_folder [r/q/val]"
  # Published sets: the root only locates the data; one column.
  assert labels["imagenet(root='/a')"] == labels["imagenet(root='/b')"] == "imagenet"
