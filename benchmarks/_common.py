"""Paths and small helpers shared by the benchmark and figure scripts."""

from __future__ import annotations

import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs"


def machine() -> str:
    """A one-line description of the machine a benchmark ran on."""
    import os

    return f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}"


def write_table(name: str, header: list[str], rows: list[list[object]], notes: str = "") -> Path:
    """Write a Markdown table to benchmarks/results/NAME.md (and a CSV beside it)."""
    import csv

    RESULTS.mkdir(parents=True, exist_ok=True)
    md = RESULTS / f"{name}.md"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    md.write_text(f"# {name}\n\n{notes}\n\n" + "\n".join(lines) + "\n")
    with open(RESULTS / f"{name}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return md
