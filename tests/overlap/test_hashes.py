"""pHash / dHash against imagehash and hand cases; multi-index Hamming search vs brute force."""
import imagehash
import numpy as np
import pytest
from PIL import Image

from tests.overlap import overlap_fixtures as fx
from jaxbench.overlap import calibrate, hashes


def _images():
  rng = np.random.default_rng(3)
  out = [fx.smooth_image(rng) for _ in range(4)]
  out.append(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))  # noise, odd size
  return out


@pytest.mark.parametrize("name,ref", [("phash", imagehash.phash), ("dhash", imagehash.dhash)])
def test_bits_match_imagehash(name, ref):
  for img in _images():
    ours = hashes.unpack(hashes.HASHES[name](img))
    np.testing.assert_array_equal(ours, ref(Image.fromarray(img)).hash)


def test_dhash_hand_cases():
  ramp = np.tile(np.linspace(0, 255, 90).astype(np.uint8)[None, :, None], (40, 1, 3))
  assert hashes.dhash(ramp) == np.uint64(2**64 - 1)     # every right neighbour brighter
  assert hashes.dhash(ramp[:, ::-1].copy()) == np.uint64(0)
  # Packing: first grid cell is the most significant bit.
  bits = np.zeros((8, 8), bool)
  bits[0, 0] = True
  assert hashes._pack(bits) == np.uint64(1 << 63)
  assert hashes.hamming(np.uint64(0b1011), np.uint64(0b0110)) == 3


@pytest.mark.parametrize("radius", [0, 3, 7])
def test_match_equals_bruteforce(radius):
  rng = np.random.default_rng(radius)
  corpus = rng.integers(0, 2**63, 400, dtype=np.int64).astype(np.uint64) * np.uint64(2)
  queries = rng.integers(0, 2**63, 30, dtype=np.int64).astype(np.uint64)
  # Plant neighbours at distances 0..radius+2 (some inside, some just outside).
  for i in range(30):
    j = rng.integers(0, 400)
    flips = rng.choice(64, size=rng.integers(0, radius + 3), replace=False)
    q = int(corpus[j])
    for f in flips:
      q ^= 1 << int(f)
    queries[i] = np.uint64(q)
  qi, ci, d = hashes.match(queries, corpus, radius)
  full = hashes.hamming(queries[:, None], corpus[None, :])
  want = sorted((int(a), int(b)) for a, b in zip(*np.nonzero(full <= radius)))
  assert sorted(zip(qi.tolist(), ci.tolist())) == want
  np.testing.assert_array_equal(d, full[qi, ci])
  with pytest.raises(ValueError, match="max_distance"):
    hashes.match(queries, corpus, 64)


def test_hash_duplicates_found():
  imgs = _images()[:4]
  corpus = [calibrate.near_duplicate(imgs[0], "jpeg", np.random.default_rng(0)),
            calibrate.near_duplicate(imgs[1], "resize", np.random.default_rng(1)),
            imgs[2].copy()] + [fx.smooth_image(np.random.default_rng(100 + i))
                               for i in range(20)]
  for name in ("phash", "dhash"):
    q = np.asarray([hashes.HASHES[name](im) for im in imgs], np.uint64)
    c = np.asarray([hashes.HASHES[name](im) for im in corpus], np.uint64)
    qi, ci, d = hashes.match(q, c, 4)
    found = set(zip(qi.tolist(), ci.tolist()))
    assert {(0, 0), (1, 1), (2, 2)} <= found, (name, found)
    assert d[(qi == 2) & (ci == 2)][0] == 0          # an exact copy has distance 0
    assert all(c_ < 3 for _, c_ in found), (name, found)  # nothing unrelated within 4
