"""Prompt layout: token ids back to text, training rows checked against the classes."""
import numpy as np
import pytest

from jaxbench.zeroshot.learned import layout


@pytest.mark.parametrize("ids,text", [
    ([1848, 1664, 653, 912], "awesome cooingled"),
    ([320, 1125, 539, 320], "a photo of a"),
    ([23703, 1150, 316, 3628], "annually ates ] interesting")])
def test_decode_reads_clip_bpe(ids, text):
  assert layout.decode(ids) == text


def _layout(num_classes: int) -> layout.PromptLayout:
  return layout.PromptLayout(ids=np.zeros((num_classes, 8), np.int32),
                             eot=np.full(num_classes, 3, np.int32), num_slots=2,
                             classnames=tuple(f"c{i}" for i in range(num_classes)),
                             suffix="{}", specials=(1, 2), vocab_size=10, context_length=8)


def test_check_rows_returns_float32_features_and_int32_labels():
  feats, labels = layout.check_rows(_layout(3), [[1, 2], [3, 4]], [0, 2])
  assert feats.dtype == np.float32 and labels.dtype == np.int32
  np.testing.assert_array_equal(labels, [0, 2])


@pytest.mark.parametrize("feats,labels,match", [
    (np.zeros(4), [0, 1, 2, 0], r"expected features \(N, D\) and labels \(N,\)"),
    (np.zeros((2, 4)), [0, 1, 2], r"expected features \(N, D\) and labels \(N,\)"),
    (np.zeros((0, 4)), [], r"expected features \(N, D\) and labels \(N,\)"),
    (np.zeros((2, 4)), [0, 3], r"labels span \[0, 3\] but there are 3 class names"),
    (np.zeros((2, 4)), [-1, 0], r"labels span \[-1, 0\]")])
def test_check_rows_refuses_bad_rows(feats, labels, match):
  with pytest.raises(ValueError, match=match):
    layout.check_rows(_layout(3), feats, labels)
