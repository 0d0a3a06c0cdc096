"""``python -m jaxbench.overlap --config=configs/overlap.py --workdir=DIR``: the overlap
suite (:mod:`jaxbench.suites.overlap`) on its own command line (an entry point: it sits
on the top floor with ``jaxbench.main``)."""


def main(argv=None):
  from absl import app, flags
  from ml_collections import config_flags

  # jaxbench.main defines the same flags when both are imported in one process.
  if "config" not in flags.FLAGS:
    # Overrides (--config.x=...) are read from sys_argv: give it the argv parsed here.
    config_flags.DEFINE_config_file("config", None, "configs/overlap.py", lock_config=False,
                                    sys_argv=argv)
  if "workdir" not in flags.FLAGS:
    flags.DEFINE_string("workdir", None, "output directory (results.jsonl, overlap/)")
  if "distributed" not in flags.FLAGS:
    flags.DEFINE_bool("distributed", False, "start JAX's multi-host runtime "
                      "(auto-detected cluster: TPU VM, SLURM)")

  def _main(_):
    from jaxbench import parallel, suites
    cfg = flags.FLAGS.config
    if flags.FLAGS.distributed:
      parallel.initialize()
    rows = suites.run(cfg, flags.FLAGS.workdir)
    for r in rows:
      print(f"{r['dataset']}\t{r['model']}\t{r['metric']}\t{r['value']:.4f}\t(n={r['n']})")

  flags.mark_flags_as_required(["config", "workdir"])
  app.run(_main, argv=argv)


if __name__ == "__main__":
  main()
