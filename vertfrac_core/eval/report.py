"""Result tables of the evaluation commands (Markdown + CSV under benchmarks/results/)."""

from __future__ import annotations

import csv
import platform
from datetime import date
from pathlib import Path

import numpy as np

from vertfrac_core.eval.localizer import CaseResult, summary


def _fmt(x: float, nd: int = 2) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.{nd}f}"


def write_localizer_tables(results: dict[str, list[CaseResult]], out: Path, note: str,
                           stem: str = "localizer") -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, res in results.items():
        s = summary(res)
        md = out / f"{stem}_{name}.md"
        title = {"localizer": "Localizer (step 1 as shipped: network line centred on the body walls)",
                 "localizer_network": "Localizer network alone (decoded line, no centring)"}.get(
            stem, "Localizer + second look (line moved onto the bodies step 2 found)")
        lines = [
            f"# {title} on {name}", "",
            f"Run {date.today().isoformat()} on {platform.machine()} "
            f"({note if name == 'phantoms' else 'the real CTs in ../shared/data/real'}). Distance = from each "
            "visible true vertebral body centre to the predicted centre line.", "",
            "| cases | vertebrae | mean mm | p95 mm | max mm | inside extent | failures | median s/case |",
            "|---|---|---|---|---|---|---|---|",
            f"| {s['cases']} | {s['vertebrae']} | {_fmt(s['mean_mm'])} | {_fmt(s['p95_mm'])} | "
            f"{_fmt(s['max_mm'])} | {_fmt(s['inside_extent'], 3)} | {s['failures']} | {_fmt(s['median_seconds'])} |",
            "", "| case | visible | mean mm | max mm | inside | levels | status | detail |", "|---|---|---|---|---|---|---|---|",
        ]
        for r in res:
            d = r.distances_mm
            lines.append(
                f"| {r.case} | {r.n_visible} | {_fmt(d.mean()) if d.size else '-'} | "
                f"{_fmt(d.max()) if d.size else '-'} | "
                f"{int(r.inside_extent.sum()) if r.inside_extent.size else 0}/{r.n_visible} | "
                f"{' '.join(f'{lv}:{x:.1f}' for lv, x in zip(r.levels, d, strict=False)) if name == 'real' else (r.levels[0] + '-' + r.levels[-1] if r.levels else '-')} | "
                f"{'FAILED: ' + r.failed if r.failed else 'ok'} | {r.detail} |")
        md.write_text("\n".join(lines) + "\n")
        with open(out / f"{stem}_{name}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["case", "visible", "mean_mm", "max_mm", "inside", "failed", "detail"])
            for r in res:
                d = r.distances_mm
                w.writerow([r.case, r.n_visible, d.mean() if d.size else "", d.max() if d.size else "",
                            int(r.inside_extent.sum()), r.failed or "", r.detail])
        paths[name] = md
    return paths
