"""``python -m jaxbench.overlap --config=configs/overlap.py --workdir=DIR``."""
from jaxbench.overlap.run import main

if __name__ == "__main__":
  main()
