"""Learned prompts (RoZ's CLIP-Auto): AutoPrompt and CoOp, and their heads.

One job per module, each importing only the ones listed before it:

* :mod:`~jaxbench.zeroshot.learned.layout`: the prompt layout (M learned slots
  after the start token), slot checks, token ids back to text;
* :mod:`~jaxbench.zeroshot.learned.tower`: the frozen text tower on token
  embeddings and the zero-shot loss both learners minimise;
* :mod:`~jaxbench.zeroshot.learned.artifacts`: learned prompts on disk (JSON, CoOp's
  ``.npz``) and RoZ's prompt logs;
* :mod:`~jaxbench.zeroshot.learned.heads`: learned prompts as a
  :class:`~jaxbench.zeroshot.head.ZeroShotHead`; :func:`~jaxbench.zeroshot.learned.
  heads.head_for`, the ``templates='learned:PATH[:N]'`` hook;
* :mod:`~jaxbench.zeroshot.learned.autoprompt`: discrete AutoPrompt/HotFlip search;
* :mod:`~jaxbench.zeroshot.learned.coop`: CoOp's continuous context vectors;
* :mod:`~jaxbench.zeroshot.learned.clip_auto`: the orchestrator (:func:`~jaxbench.
  zeroshot.learned.clip_auto.learn`): k-shot split, image features, a learner, the
  artifact, for every model of a config.
"""
