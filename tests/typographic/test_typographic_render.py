"""Writing on one image: determinism, pixels, supersampling, text modes, RoZ's figures and loops."""
import io

import numpy as np
import pytest

import typographic_fixtures as fx
from jaxbench.typographic import codec, errors, hershey, variants, vocabulary
from jaxbench.typographic import text as text_lib

IMAGENET = vocabulary.vocabulary("imagenet_t")
CIFAR = vocabulary.vocabulary("cifar10_t")
ROZ = variants.KIND_DEFAULTS["imagenet_t"]


def test_same_seed_same_pixels_in_any_order():
  img = fx.photo(300, 400)
  a = [fx.render_one(img, ROZ, IMAGENET, 3, seed=5, eid=f"im{i}") for i in range(4)]
  b = [fx.render_one(img, ROZ, IMAGENET, 3, seed=5, eid=f"im{i}") for i in reversed(range(4))][::-1]
  for ra, rb in zip(a, b):
    assert np.array_equal(ra.image, rb.image) and ra.placements == rb.placements


def test_other_seeds_and_ids_draw_other_placements():
  img = fx.photo(300, 400)
  a = [fx.render_one(img, ROZ, IMAGENET, 3, seed=5, eid=f"im{i}") for i in range(4)]
  c = fx.render_one(img, ROZ, IMAGENET, 3, seed=6, eid="im0")
  assert c.placements != a[0].placements
  # Different ids draw different words/positions.
  assert len({r.placements for r in a}) == 4


def test_text_pixels_are_where_the_manifest_says():
  """White text on black: the drawn pixels equal the text drawn at the recorded
  origins (put_text is checked against OpenCV 4 above), lie inside the ink
  boxes, and every box holds text."""
  black = np.zeros((200, 300, 3), np.uint8)
  for i in range(10):
    r = fx.render_one(black, ROZ, IMAGENET, 1, eid=str(i))
    if r.skipped:
      continue
    ref = black.copy()
    for x, y in r.placements:
      hershey.put_text(ref, r.text, (x, y), "hershey_duplex", 0.8, (255, 255, 255), 1)
    assert np.array_equal(r.image, ref)
    on = r.image.max(-1) > 0
    inside = np.zeros_like(on)
    for x0, y0, x1, y1 in r.ink:
      inside[max(y0, 0):y1, max(x0, 0):x1] = True
    assert on.any() and not (on & ~inside).any()
    w, h, _ = r.box
    for x, y in r.placements:
      assert on[y - h:y, x:x + w].sum() > 15


def test_supersampled_cifar_text_keeps_other_pixels():
  img = fx.photo(32, 32, seed=3)
  _, v = variants.parse_variant("on_image", "cifar10_t")     # the 32x32 rendering
  for i in range(6):
    r = fx.render_one(img, v, CIFAR, 2, eid=str(i))
    assert not r.skipped and r.image.shape == (32, 32, 3) and len(r.placements) == 4
    assert r.written_label != 2 and r.text == CIFAR.words[r.written_label]
    changed = np.any(r.image != img, -1)
    inside = np.zeros_like(changed)
    for x0, y0, x1, y1 in r.ink:
      inside[max(int(np.floor(y0)), 0):int(np.ceil(y1)), max(int(np.floor(x0)), 0):int(np.ceil(x1))] = True
    assert changed.any() and not (changed & ~inside).any()
    # The text is light: every placement brightens some pixel a lot.
    w, h, _ = r.box
    for x, y in r.placements:
      y0, x0 = int(y - h), int(x)
      diff = r.image[y0:int(np.ceil(y)), x0:int(np.ceil(x + w))].astype(int) - \
          img[y0:int(np.ceil(y)), x0:int(np.ceil(x + w))]
      assert diff.max() > 60


def test_variants_text_modes():
  img = fx.photo(200, 300)
  for spec, check in [
      ("true_class", lambda r: r.written_label == 8 and r.text == "hen"),
      ("random_word", lambda r: r.written_label == -1 and r.text in vocabulary.NON_CLASS_WORDS),
      ("random_class", lambda r: r.written_label in IMAGENET.eligible),
      ("typo(text='fixed', word='hello')", lambda r: r.text == "hello" and r.written_label == -1),
      ("typo(text='fixed', word='cock')", lambda r: r.written_label == 7),
  ]:
    _, v = variants.parse_variant(spec, "imagenet_t")
    assert check(fx.render_one(img, v, IMAGENET, 8)), spec
  # The true-class control of a multi-word class writes its first WordNet lemma.
  _, v = variants.parse_variant("true_class", "imagenet_t")
  assert fx.render_one(img, v, IMAGENET, 0).text == "tench"


def test_roz_matplotlib_matches_pyplot_savefig():
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  img = fx.photo(32, 32)
  _, v = variants.parse_variant("roz_matplotlib", "cifar10_t")
  r = fx.render_one(img, v, CIFAR, 0)
  assert r.image.shape == (720, 960, 3) and len(r.placements) == 4
  assert all(0 <= x < 24 and 1 <= y < 32 for x, y in r.placements)
  # RoZ's script: pyplot imshow + text, savefig(pad_inches=0, dpi=150) as JPEG.
  plt.figure()
  plt.imshow(img)
  for x, y in r.placements:
    plt.text(x, y, r.text, fontdict={"color": "white", "size": 20, "family": "Times New Roman"})
  buf = io.BytesIO()
  # RoZ's pinned matplotlib saved JPEGs at rcParams['savefig.jpeg_quality'] = 95;
  # today's matplotlib takes it as pil_kwargs.
  plt.savefig(buf, format="jpeg", pad_inches=0, dpi=150, pil_kwargs={"quality": 95})
  plt.close("all")
  assert codec.encode(r.image, "jpeg_matplotlib") == buf.getvalue()


def _roz_transcription(m, n, label, label_rng, place_rng):
  """build_imgNet_dataset.py's get_mis_text + put_text, as coded (RoZ @ 6b4b7ff), with
  np.random.randint replaced by the two example streams and cv2.getTextSize(...,
  FONT_HERSHEY_DUPLEX, 0.8, thickness=2) by OpenCV 4's metrics (checked above).
  Returns (written label, placements or None when the image is skipped)."""
  valid = set(IMAGENET.eligible)
  size = lambda t: hershey.text_size(t, "hershey_duplex", 0.8, 2)[:2]

  def check(text):
    width, height = size(text)
    return m - width <= 0 or height >= n

  count = 0
  while True:
    cur_num = int(label_rng.integers(1000))
    if cur_num != label and cur_num in valid and check(IMAGENET.words[cur_num]):
      break
    count += 1
    if count >= 100:
      if cur_num != label and cur_num in valid:
        break
  width, height = size(IMAGENET.words[cur_num])
  if m - width <= 0 or height >= n:
    return cur_num, None
  points_li = []

  def check_single_point(x, y):
    for point in points_li:
      if x > point[0] and x < point[0] + width and y < point[1] and y > point[1] - height:
        return False
    return True

  for _ in range(8):
    while True:
      x = int(place_rng.integers(0, m - width))
      y = int(place_rng.integers(0 + height, n))
      if (check_single_point(x, y) & check_single_point(x + width, y)
          & check_single_point(x, y - height) & check_single_point(x + width, y - height)):
        break
    points_li.append((x, y))
  return cur_num, points_li


def test_roz_preset_keeps_and_skips_as_a_transcription_of_roz_loops():
  _, roz = variants.parse_variant("roz", "imagenet_t")
  rng = np.random.default_rng(18)
  # Synthetic size distribution: narrow, small and ImageNet-like images.
  sizes = [(int(rng.integers(16, 120)), int(rng.integers(40, 200))) for _ in range(120)]
  sizes += [(165, 286)] * 20 + [(int(rng.integers(60, 400)), 140) for _ in range(40)]
  kept = skipped = overlapping = 0
  for i, (h, w) in enumerate(sizes):
    label = int(rng.integers(1000))
    want_label, want_pts = _roz_transcription(w, h, label, text_lib.example_rng(3, str(i), "label"),
                                              text_lib.example_rng(3, str(i), "place"))
    r = fx.render_one(np.zeros((h, w, 3), np.uint8), roz, IMAGENET, label, seed=3, eid=str(i))
    assert r.written_label == want_label, (h, w)
    if want_pts is None:
      assert r.skipped == "text_does_not_fit" and r.image is None, (h, w)
      skipped += 1
    else:
      assert not r.skipped and [tuple(p) for p in r.placements] == want_pts, (h, w)
      kept += 1
      bw, bh = r.box[:2]
      overlapping += any(abs(a[0] - b[0]) < bw and abs(a[1] - b[1]) < bh
                         for j, a in enumerate(want_pts) for b in want_pts[:j])
  assert kept > 20 and skipped > 20 and overlapping > 0   # both outcomes exercised


def test_text_is_drawn_in_the_variant_colour():
  img = np.zeros((300, 400, 3), np.uint8)
  _, v = variants.parse_variant("typo(policy='centered', count=3, color=(255, 0, 0))", "imagenet_t")
  r = fx.render_one(img, v, IMAGENET, 1)
  on = r.image.max(-1) > 0
  assert (r.image[on] == [255, 0, 0]).all()


def test_outline_is_drawn_around_the_text_in_its_colour():
  _, v = variants.parse_variant("typo(outline=2, outline_color=(0, 255, 0))", "imagenet_t")
  r = fx.render_one(np.full((200, 300, 3), 100, np.uint8), v, IMAGENET, 1)
  px = r.image.reshape(-1, 3)
  assert ((px == [0, 255, 0]).all(-1).sum() > 100 and (px == [255, 255, 255]).all(-1).sum() > 100)


def test_bad_images_are_refused():
  gray = np.zeros((100, 200), np.uint8)
  with pytest.raises(errors.TypographicError, match="uint8 \\(H, W, 3\\) RGB.*convert"):
    fx.render_one(gray, ROZ, IMAGENET, 0)
  with pytest.raises(errors.TypographicError, match="float32"):
    fx.render_one(np.zeros((100, 200, 3), np.float32), ROZ, IMAGENET, 0)
  with pytest.raises(errors.TypographicError, match="label 1000 outside"):
    fx.render_one(fx.photo(100, 200), ROZ, IMAGENET, 1000)
