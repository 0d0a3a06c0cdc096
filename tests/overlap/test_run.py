"""The overlap suite end to end from configs/overlap.py over tar shards the test writes.

Planted near-duplicates of evaluation images (exact re-encode, resized, re-encoded JPEG,
cropped, colour-jittered) hidden among unrelated images and bad members in two
img2dataset-style shards must all be found (recall 1.0 per transformation) while no
unrelated image is flagged; the accuracy split must equal the one computed by hand from the
runner's per-example outputs; rows must reach the report.
"""
import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.overlap import overlap_fixtures as fx
from jaxbench import store as store_lib, suites
from jaxbench.engine import plan as plan_lib
from jaxbench.overlap import __main__ as ov_main, calibrate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLANTED = ("exact", "resize", "jpeg", "crop", "jitter")


def _get_config():
  spec = importlib.util.spec_from_file_location("overlap_cfg",
                                                os.path.join(REPO, "configs", "overlap.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
  fx.register_test_models()
  base = tmp_path_factory.mktemp("suite")
  rng = np.random.default_rng(7)
  # Evaluation set: 3 classes x 4 images.
  eval_root = base / "eval"
  eval_imgs = {}
  for c in ("ant", "bee", "cow"):
    os.makedirs(eval_root / c)
    for i in range(4):
      img = fx.smooth_image(rng)
      rel = f"{c}/{c}{i}.png"
      Image.fromarray(img).save(eval_root / rel)
      eval_imgs[rel] = img
  eval_ids = sorted(eval_imgs)
  # Planted: eval image j gets the j-th transformation (independent random parameters).
  planted = {}
  samples = [[], []]
  for j, t in enumerate(PLANTED):
    qid = eval_ids[2 * j]
    img = eval_imgs[qid]
    copy = img if t == "exact" else calibrate.near_duplicate(
        img, t, np.random.default_rng([99, j]))
    key = f"p{j:03d}"
    shard = j % 2
    samples[shard].append((key, fx.jpeg_bytes(copy, 90)))
    planted[qid] = (f"{shard:05d}/{key}", t)
  unrelated = set()
  for i in range(30):
    key = f"u{i:03d}"
    samples[i % 2].append((key, fx.jpeg_bytes(fx.smooth_image(rng))))
    unrelated.add(f"{i % 2:05d}/{key}")
  for s in samples:
    rng.shuffle(s)

  def bad_members(tf):
    fx.add_member(tf, "../evil.jpg", fx.jpeg_bytes(eval_imgs[eval_ids[1]]))
    fx.add_member(tf, "/tmp/evil_abs.jpg", fx.jpeg_bytes(eval_imgs[eval_ids[1]]))
    fx.add_member(tf, "notimg.txt", b"a caption without an image")
    fx.add_member(tf, "u000.jpg", fx.jpeg_bytes(eval_imgs[eval_ids[3]]))  # duplicate key
    fx.add_member(tf, "broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")

  corpus = base / "corpus"
  os.makedirs(corpus)
  fx.write_shard(str(corpus / "00000.tar"), samples[0], extra=bad_members)
  fx.write_shard(str(corpus / "00001.tar"), samples[1])

  cfg = _get_config()
  cfg.models = ("ovltest:clf",)
  cfg.datasets = (f"image_folder(root={str(eval_root)!r})",)
  cfg.data_root = ""
  cfg.batch_size = 16
  cfg.num_workers = 2
  cfg.overlap.corpus = str(corpus)
  cfg.overlap.detector = "ovltest:thumb"
  cfg.overlap.k = 3
  cfg.overlap.chunk = 16
  cfg.overlap.block = 8
  cfg.overlap.gallery = 50
  cfg.overlap.calibration.num = 12
  workdir = str(base / "work")
  rows = suites.run(cfg, workdir, print_fn=lambda *a: None)
  return dict(rows=rows, workdir=workdir, planted=planted, unrelated=unrelated,
              eval_ids=eval_ids, cfg=cfg, base=str(base), eval_root=str(eval_root),
              corpus=str(corpus))


def _pairs(workdir):
  d = os.path.join(workdir, "overlap")
  (sub,) = [s for s in os.listdir(d) if s.startswith("image_folder")]
  with open(os.path.join(d, sub, "pairs.jsonl")) as f:
    return [json.loads(l) for l in f], os.path.join(d, sub)


def test_planted_duplicates_are_found(suite):
  pairs, _ = _pairs(suite["workdir"])
  emb = {(p["query_id"], p["corpus_id"]) for p in pairs if p["method"] == "embedding"}
  for qid, (cid, t) in suite["planted"].items():
    assert (qid, cid) in emb, f"planted {t} copy {cid} of {qid} not found"


def test_unrelated_images_are_not_flagged(suite):
  pairs, _ = _pairs(suite["workdir"])
  for p in pairs:
    assert p["corpus_id"] not in suite["unrelated"], p
    assert p["query_id"] in suite["planted"], p


def test_calibration_separates_copies_from_unrelated_pairs(suite):
  with open(os.path.join(suite["workdir"], "overlap", "calibration.json")) as f:
    cal = json.load(f)
  assert cal["separable"] and 0.0 < cal["threshold"] < 1.0


def _overlap_rows(suite):
  rows = [r for r in suite["rows"] if r["suite"] == "overlap" and r["transform"] != "clean"]
  return {(r["model"], r["metric"]): r for r in rows}


def test_overlap_rate_row_by_hand(suite):
  by = _overlap_rows(suite)
  n_eval = len(suite["eval_ids"])
  rate = by[("ovltest:thumb", "overlap_rate")]
  assert rate["value"] == pytest.approx(len(suite["planted"]) / n_eval)
  assert rate["n"] == n_eval
  assert rate["key"] == "|".join((rate["model"], rate["dataset"], rate["transform"],
                                  "overlap_rate"))
  assert rate["transform"].startswith("overlap(") and "threshold='auto'" in rate["transform"]


def test_accuracy_split_rows_by_hand(suite):
  by = _overlap_rows(suite)
  n_eval = len(suite["eval_ids"])
  rate = by[("ovltest:thumb", "overlap_rate")]
  # Hand computation from the runner's stored per-example correctness.
  st = store_lib.Store(suite["workdir"])
  cfg = suite["cfg"]
  pid = plan_lib.pass_id_for(plan_lib.PassSpec("ovltest:clf", cfg.datasets[0], "clean"), cfg)
  out = st.outputs(pid)
  from jaxbench.data import catalog
  es = catalog.get(cfg.datasets[0])
  ids = [es.source[int(i)]["id"] for i in out["index"]]
  correct = dict(zip(ids, out["correct1"].astype(bool)))
  ov = [correct[q] for q in suite["eval_ids"] if q in suite["planted"]]
  cl = [correct[q] for q in suite["eval_ids"] if q not in suite["planted"]]
  assert by[("ovltest:clf", "acc_overlap")]["value"] == pytest.approx(sum(ov) / len(ov))
  assert by[("ovltest:clf", "acc_clean_subset")]["value"] == pytest.approx(sum(cl) / len(cl))
  assert by[("ovltest:clf", "acc_diff")]["value"] == pytest.approx(
      sum(ov) / len(ov) - sum(cl) / len(cl))
  assert by[("ovltest:clf", "overlap_rate")]["value"] == rate["value"]
  top1 = [r for r in st.rows() if r["metric"] == "top1" and r["transform"] == "clean"]
  assert top1 and top1[0]["value"] == pytest.approx(
      (sum(ov) + sum(cl)) / n_eval)


def test_rows_reach_the_report(suite):
  from jaxbench.report import collect, results
  rs = results.load([suite["workdir"]])
  data = collect.overlap(rs)
  (ds,) = data
  cell = data[ds]["ovltest:clf"]
  assert set(cell) >= {"overlap_rate", "acc_overlap", "acc_clean_subset"}


def test_bad_corpus_members_are_recorded(suite):
  with open(os.path.join(suite["workdir"], "overlap", "corpus_problems.json")) as f:
    problems = json.load(f)
  reasons = {p["name"]: p["reason"] for p in problems}
  assert reasons["../evil.jpg"].startswith("unsafe member name")
  assert reasons["/tmp/evil_abs.jpg"].startswith("unsafe member name")
  assert reasons["notimg"].startswith("no image member")
  assert reasons["u000.jpg"].startswith("duplicate key")
  assert reasons["00000/broken"].startswith("undecodable image")


def test_nothing_is_written_outside_the_workdir(suite):
  for root in (suite["base"], os.path.dirname(suite["base"]), os.getcwd(), "/tmp"):
    assert not os.path.exists(os.path.join(root, "evil.jpg"))
  assert not os.path.exists("/tmp/evil_abs.jpg")
  outside = fx.files_under(suite["base"]) - fx.files_under(suite["workdir"])
  assert all("/eval/" in f or "/corpus/" in f for f in outside), outside


def test_gallery_is_self_contained(suite):
  _, d = _pairs(suite["workdir"])
  html = open(os.path.join(d, "gallery.html"), encoding="utf-8").read()
  assert html.count("data:image/jpeg;base64,") >= 2 * len(suite["planted"])
  assert "http://" not in html and "https://" not in html
  for qid, (cid, _) in suite["planted"].items():
    assert qid in html and cid in html


def test_rerun_reuses_corpus_embeddings(suite, monkeypatch):
  from jaxbench.overlap import embed
  calls = []
  orig = embed.Embedder.embed
  monkeypatch.setattr(embed.Embedder, "embed",
                      lambda self, records, **kw: calls.append(kw.get("source")) or
                      orig(self, records, **kw))
  rows = suites.run(suite["cfg"], suite["workdir"], print_fn=lambda *a: None)
  assert str(suite["cfg"].overlap.corpus) not in calls  # corpus not embedded again
  ours = lambda rs: {r["key"]: r["value"] for r in rs if r["transform"] != "clean"}
  assert ours(rows) == ours(suite["rows"]) and len(ours(rows)) == 5


def test_command_line_entry(suite, capsys, monkeypatch):
  """``python -m jaxbench.overlap --config=configs/overlap.py`` with overrides (in-process)."""
  argv = ["overlap", f"--config={os.path.join(REPO, 'configs', 'overlap.py')}",
          f"--workdir={suite['workdir']}", "--config.models=('ovltest:clf',)",
          f"--config.datasets=(\"image_folder(root='{suite['eval_root']}')\",)",
          "--config.data_root=", "--config.batch_size=16", "--config.num_workers=2",
          f"--config.overlap.corpus={suite['corpus']}",
          "--config.overlap.detector=ovltest:thumb", "--config.overlap.k=3",
          "--config.overlap.chunk=16", "--config.overlap.block=8",
          "--config.overlap.gallery=50", "--config.overlap.calibration.num=12"]
  monkeypatch.setattr("sys.argv", argv)  # ml_collections reads --config.* from sys.argv
  with pytest.raises(SystemExit) as exit_info:
    ov_main.main(argv)
  assert exit_info.value.code in (None, 0)
  out = capsys.readouterr().out
  rate = [r for r in suite["rows"] if r["metric"] == "overlap_rate"][0]["value"]
  assert f"overlap_rate\t{rate:.4f}" in out
