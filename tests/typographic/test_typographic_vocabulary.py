"""The vocabularies: RoZ's eligible ImageNet classes, WordNet words, CIFAR names, control words."""
import json
import os
import re

import pytest

from jaxbench.typographic import errors, vocabulary


# protocol.md Appendix A: RoZ's valid_label_set.pickle, copied here as the
# independent reference for the shipped resource.
APPENDIX_A = """
6 7 8 16 17 18 19 21 23 27 36 42 51 69 71 76 78 79 81 84 85 86 88 90 91 93 94 95 96 97 99 101 106 107 112 113 114
126 129 130 133 134 138 142 144 151 155 157 162 164 168 172 178 222 223 224 225 226 227 228 231 234 240 241 242
253 255 259 261 298 307 308 309 312 317 320 321 331 333 336 337 339 340 343 345 347 351 353 355 356 357 360 362
363 372 373 374 377 390 394 396 398 399 404 406 407 411 417 420 422 424 425 426 429 430 431 432 438 443 448 449
453 455 456 462 464 471 472 474 478 481 483 484 488 492 501 505 511 516 517 519 523 524 526 538 542 543 549 554
561 562 564 572 573 576 578 583 587 588 594 596 597 599 604 605 607 613 614 616 618 624 625 630 631 638 641 643
644 645 654 656 657 658 662 663 664 665 666 667 668 674 676 677 679 680 682 689 690 692 695 696 698 713 715 718
721 723 727 733 735 742 745 748 753 758 764 766 771 774 775 777 780 781 783 784 789 792 795 801 802 806 808 813
814 816 819 823 824 827 828 830 835 836 841 843 845 849 855 857 859 862 865 866 868 871 872 875 877 879 883 884
885 887 888 890 902 903 908 909 913 914 915 922 923 924 925 927 932 933 937 938 946 947 949 950 951 952 954 957
958 959 961 964 965 967 968 969 970 971 974 980 984 985 987 988 992 993 995 997
"""
IMAGENET = vocabulary.vocabulary("imagenet_t")
CIFAR = vocabulary.vocabulary("cifar10_t")


def test_eligible_classes_are_appendix_a_and_the_rule():
  appendix = [int(x) for x in APPENDIX_A.split()]
  assert list(IMAGENET.eligible) == appendix and len(appendix) == 309
  rule = [i for i, w in enumerate(IMAGENET.words) if "," not in w and " " not in w]
  assert rule == appendix
  # Protocol examples: WordNet 'cock' at 7 (CLIP: rooster), and the measured sizes.
  assert (IMAGENET.words[7], IMAGENET.words[8], IMAGENET.words[79]) == ("cock", "hen", "centipede")
  assert IMAGENET.wnids[0] == "n01440764" and list(IMAGENET.wnids) == sorted(IMAGENET.wnids)
  # The wnid order agrees with the lead's resource.
  with open(os.path.join(vocabulary._RESOURCES, "imagenet_wnids.txt")) as f:
    assert [l.strip() for l in f if l.strip()] == list(IMAGENET.wnids)


def test_words_match_an_independent_wordnet_copy():
  # timm ships WordNet lemmas for the 1000 wnids; found without importing timm (slow).
  import importlib.util
  spec = importlib.util.find_spec("timm")
  assert spec is not None, "timm is a test dependency (pyproject [test] extra)"
  timm_info = os.path.join(os.path.dirname(spec.origin), "data", "_info")
  lemma = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{timm_info}/imagenet_synset_to_lemma.txt"))
  assert [lemma[w] for w in IMAGENET.wnids] == list(IMAGENET.words)


def test_cifar_prompts_resource():
  with open(os.path.join(vocabulary._RESOURCES, "cifar10_prompts.json")) as f:
    d = json.load(f)
  assert d["classnames"] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                             "horse", "ship", "truck"]
  t = d["templates"]["cifar10"]
  assert len(t) == 18 and len(set(t)) == 18 and all(x.count("{}") == 1 for x in t)
  assert t[0] == "a photo of a {}." and t[-1] == "a photo of the big {}."


def test_control_words_are_not_class_words():
  with open(os.path.join(vocabulary._RESOURCES, "clip_imagenet.json")) as f:
    clip = json.load(f)["classnames"]
  tokens = set()
  for s in list(IMAGENET.words) + list(clip) + list(CIFAR.words):
    tokens |= set(re.findall(r"[a-z]+", s.lower()))
  assert len(set(vocabulary.NON_CLASS_WORDS)) == len(vocabulary.NON_CLASS_WORDS)
  assert not [w for w in vocabulary.NON_CLASS_WORDS if any(w in t for t in tokens)]


def test_unknown_kind_is_refused():
  with pytest.raises(errors.TypographicError, match="unknown typographic kind"):
    vocabulary.vocabulary("mnist_t")
