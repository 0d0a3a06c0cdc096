"""Zero-shot classification: prompts, tokenizer files and the text head."""
from jaxbench.zeroshot.head import ZeroShotHead, build_head  # noqa: F401
from jaxbench.zeroshot import prompts  # noqa: F401
