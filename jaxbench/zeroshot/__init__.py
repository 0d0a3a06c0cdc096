"""Zero-shot classification: prompts, tokenizer files and the text head."""
from jaxbench.zeroshot.head import ZeroShotHead, build_head  # noqa: F401
from jaxbench.zeroshot import prompts  # noqa: F401


def load_learned_head(*args, **kwargs):
  """Learned prompts (AutoPrompt/CoOp artifacts, RoZ logs) as a ZeroShotHead."""
  from jaxbench.zeroshot import prompt_learning
  return prompt_learning.load_learned_head(*args, **kwargs)
