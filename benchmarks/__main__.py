"""``python -m benchmarks``: the benchmark suite (see ``benchmarks/_suite.py``)."""

from benchmarks._suite import main

raise SystemExit(main())
