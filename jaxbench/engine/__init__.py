"""The engine: config -> plan of passes -> compiled steps -> streamed batches -> store.

One module per job; the engine knows no suite (suites add to a run through
:class:`jaxbench.engine.run.Hooks`):

* :mod:`keys`: the config keys the engine reads, with their defaults (one place);
* :mod:`plugins`: modules a config needs imported first (they register things);
* :mod:`plan`: the passes (model, dataset, transform), their ids, the batch size;
* :mod:`heads`: the zero-shot head a model gets for a set;
* :mod:`step`: the compiled step and the cache that reuses it across passes;
* :mod:`loop`: one pass (resume, input batches, checkpoints, preemption, checks);
* :mod:`rows`: the rows of a finished pass; :mod:`provenance`: what they record;
* :mod:`workdir`: which config wrote a workdir, finished passes, shared-disk check;
* :mod:`run`: validate, preflight, dry-run description, the whole run.
"""
