"""Writes typographic_cv4_reference.npz: OpenCV 4's Hershey Duplex text, the reference
for jaxbench.typographic.hershey.put_text / text_size (RoZ used opencv-python 4.1).

OpenCV 5 no longer draws Hershey strokes, so this must run with an OpenCV 4 build:

    pip install --target /tmp/cv4 --no-deps opencv-python-headless==4.10.0.84
    PYTHONPATH=/tmp/cv4 .venv/bin/python tests/typographic/make_typographic_fixtures.py

Each case is a word drawn with cv2.putText(FONT_HERSHEY_DUPLEX, LINE_8) in white on
black at a given origin, scale and thickness (binary mask, bit-packed) plus
cv2.getTextSize's (w, h, baseline).
"""
import json
import os

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORDS = ["hen", "centipede", "pickelhaube", "jack-o'-lantern", "Shih-Tzu", "EntleBucher",
         "Weimaraner", "four-poster", "automobile", "airplane", "truck", "honesty",
         "0123456789", "!\"#$%&'()*+,-./:;<=>?@", "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
         "abcdefghijklmnopqrstuvwxyz|~[]"]
# (scale, thickness): RoZ's drawing (0.8, 1) and box (0.8, 2), CIFAR's 8x canvas
# (1.25, 7/8), a large word and a small odd scale.
SETTINGS = [(0.8, 1), (0.8, 2), (1.25, 7), (1.25, 8), (2.65, 3), (0.37, 1)]


def main():
  assert cv2.__version__.startswith("4."), f"needs OpenCV 4, found {cv2.__version__}"
  rng = np.random.default_rng(0)
  cases, masks = [], []
  for word in WORDS:
    for scale, thick in SETTINGS:
      (w, h), base = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
      org = (int(rng.integers(-4, 12)), int(rng.integers(h + 2, h + 12)))
      shape = (org[1] + base + 8, org[0] + w + 16)
      img = np.zeros(shape, np.uint8)
      cv2.putText(img, word, org, cv2.FONT_HERSHEY_DUPLEX, scale, 255, thick, cv2.LINE_8)
      cases.append({"word": word, "scale": scale, "thickness": thick, "org": org,
                    "shape": shape, "size": [w, h, base]})
      masks.append(np.packbits(img.ravel() > 0))
  # One flat array plus offsets: loadable without pickle.
  offsets = np.cumsum([0] + [len(m) for m in masks])
  np.savez_compressed(os.path.join(HERE, "typographic_cv4_reference.npz"),
                      cases=np.array(json.dumps(cases)), opencv=np.array(cv2.__version__),
                      masks=np.concatenate(masks), offsets=offsets)


if __name__ == "__main__":
  main()
