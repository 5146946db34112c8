"""`make bench`: every benchmark, each writing its table under benchmarks/results/."""

from __future__ import annotations

import importlib
import logging
import sys

BENCHES = ["benchmarks.bench_phantom", "benchmarks.bench_ingest", "benchmarks.bench_analyze",
           "benchmarks.bench_pipeline"]


def main(names: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("openjpeg").setLevel(logging.WARNING)
    for name in names or BENCHES:
        logging.info("running %s", name)
        importlib.import_module(name).main()


if __name__ == "__main__":
    main(sys.argv[1:] or None)
