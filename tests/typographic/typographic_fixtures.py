"""Tiny sources for the typographic generator tests: an ImageNet-layout folder (with
grayscale, CMYK, too-small and broken files) and a CIFAR-10 binary test batch."""
import os

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01514859")   # classes 0, 1, 8 (8 = 'hen', eligible)


def photo(h, w, seed=0):
  """A smooth colour image (so text pixels differ from the background)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  img = np.stack([60 + 40 * np.sin(xx / (7 + c) + rng.uniform(0, 6)) + 30 * np.cos(yy / 9)
                  for c in range(3)], -1)
  return np.clip(img, 0, 200).astype(np.uint8)


def render_one(image, variant, vocab, label, seed=0, eid="x"):
  """``render.render`` with the example's own label and placement streams."""
  from jaxbench.typographic import render, text as text_lib
  return render.render(image, variant, vocab, label, text_lib.example_rng(seed, eid, "label"),
                       text_lib.example_rng(seed, eid, "place"))


def smooth(h, w, seed):
  """A smooth colour image: text pixels stand out, JPEG keeps it close."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  img = np.stack([90 + 50 * np.sin(xx / rng.uniform(6, 12) + c) + 30 * np.cos(yy / 10)
                  for c in range(3)], -1)
  return np.clip(img, 0, 200).astype(np.uint8)


def imagenet_folder(root):
  """root/<wnid>/*.JPEG: 6 RGB images, plus gray, CMYK, tiny and broken files.

  Returns:
    dict with the source root and the ids of the special files.
  """
  for i, wnid in enumerate(WNIDS):
    os.makedirs(os.path.join(root, wnid), exist_ok=True)
    for j in range(2):
      Image.fromarray(smooth(170 + 10 * j, 260, 10 * i + j)).save(
          os.path.join(root, wnid, f"ILSVRC2012_val_0000{i}{j}01.JPEG"), quality=92)
  Image.fromarray(smooth(180, 260, 99)[..., 0]).save(
      os.path.join(root, WNIDS[0], "gray.JPEG"), quality=92)
  Image.fromarray(smooth(180, 260, 98)).convert("CMYK").save(
      os.path.join(root, WNIDS[1], "cmyk.JPEG"), quality=92)
  Image.fromarray(smooth(20, 24, 97)).save(os.path.join(root, WNIDS[2], "tiny.JPEG"))
  with open(os.path.join(root, WNIDS[2], "broken.JPEG"), "wb") as f:
    f.write(b"\xff\xd8 not really a jpeg")
  return {"root": root, "gray": f"{WNIDS[0]}/gray.JPEG", "cmyk": f"{WNIDS[1]}/cmyk.JPEG",
          "tiny": f"{WNIDS[2]}/tiny.JPEG", "broken": f"{WNIDS[2]}/broken.JPEG", "n": 10}


def cifar_bin(path, n=12, seed=0):
  """A CIFAR-10 binary batch: n records of 1 label byte + 3072 CHW pixel bytes.

  Returns:
    (images uint8 (n, 32, 32, 3), labels (n,)).
  """
  labels = np.arange(n) % 10
  images = np.stack([smooth(32, 32, seed + i) for i in range(n)])
  recs = np.concatenate([labels[:, None].astype(np.uint8),
                         images.transpose(0, 3, 1, 2).reshape(n, -1)], 1)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  recs.tofile(path)
  return images, labels
