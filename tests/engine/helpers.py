"""Shared pieces of the engine tests: a tiny image folder, a config, the command line.

Imported by tests of other parts too (``from tests.engine.helpers import _config``).
"""
import os
import subprocess
import sys

import ml_collections
import numpy as np
from PIL import Image

from jaxbench import store as store_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write_folder(root, n_per_class=6, classes=("cat", "dog", "fish"), size=(40, 30),
                  bad=()):
  rng = np.random.default_rng(0)
  for c in classes:
    os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(n_per_class):
      arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
      Image.fromarray(arr).save(os.path.join(root, c, f"{c}_{i:04d}.JPEG"), "JPEG")
  for rel in bad:
    with open(os.path.join(root, rel), "wb") as f:
      f.write(b"\xff\xd8 broken")
  return root


def _config(model_dir, data_dir, **kw):
  c = ml_collections.ConfigDict(dict(
      suite="zeroshot", seed=0, models=(model_dir,),
      zeroshot=dict(classnames="imagenet", templates="photo", head="imagenet",
                    logit_scale="model"),
      preprocess="", datasets=(f"image_folder(root={data_dir!r})",), transforms=("clean",),
      batch_size=8, mesh=dict(data=-1, model=1), checkpoint_every=2, log_every=100,
      num_workers=2, precision="float32", max_examples=-1, report=False,
      workdir_policy="strict"))
  c.update(kw)
  return c


def _outputs(workdir):
  st = store_lib.Store(workdir)
  (pid,) = os.listdir(os.path.join(workdir, "passes"))
  return st.outputs(pid)


def _cli(args, **kw):
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", "jaxbench.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300, **kw)


def _write_config_file(path, cfg):
  path.write_text("import ml_collections\n\ndef get_config():\n"
                  f"  return ml_collections.ConfigDict({cfg.to_dict()!r})\n")
  return str(path)
