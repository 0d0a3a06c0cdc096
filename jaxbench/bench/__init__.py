"""Benchmarks: ``python -m jaxbench.bench NAME [flags]``.

Each benchmark is a module ``jaxbench.bench.NAME`` with ``main(argv)`` that
prints its figures side by side with the reference it must beat, and appends a
JSON record to ``--out`` (default ``bench_results.jsonl``).
"""
