"""Benchmarks of cnnmft: ``python -m benchmarks`` runs the suite; ``bench_*.py`` are per-topic."""
