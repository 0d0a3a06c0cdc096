"""Zero-shot classification: prompts, tokenizer files and the text head.

Learned prompts (AutoPrompt/CoOp, RoZ's CLIP-Auto) live one floor up, in
:mod:`jaxbench.zeroshot.learned`.
"""
from jaxbench.zeroshot.head import ZeroShotHead, build_head  # noqa: F401
from jaxbench.zeroshot import prompts  # noqa: F401
