"""Parquet rows of one ScanResult (the `scans` and `vertebrae` fields), for `vertfrac analyze`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vertfrac_core.result import ScanResult


def scan_row(res: ScanResult) -> dict:
    return {
        "source": res.source, "status": res.status.value, "model_version": res.model_version,
        "failed_stage": res.failed_stage.value if res.failed_stage else None,
        "error_code": res.error_code, "error": res.error,
        "vertebrae_found": len(res.vertebrae),
        "levels_covered": " ".join(v.level for v in res.vertebrae),
        "max_grade": res.max_grade,
        "fracture": None if res.max_grade is None else bool(res.max_grade >= 1),
        "l1_hu": res.l1_hu, "l1_hu_level": res.l1_hu_level, "density_flag": res.density_flag.value,
        "image": res.images.get("sagittal"),
        **{f"t_{k}_s": v for k, v in res.timings_s.items()},
    }


def vertebra_rows(res: ScanResult) -> list[dict]:
    rows = []
    for v in res.vertebrae:
        r = {"source": res.source, "model_version": res.model_version, "level": v.level,
             "level_confidence": v.level_confidence, "score": v.score,
             "center_x": v.center_lps[0], "center_y": v.center_lps[1], "center_z": v.center_lps[2]}
        for n, p in enumerate(v.keypoints_lps):
            r.update({f"kp{n}_x": p[0], f"kp{n}_y": p[1], f"kp{n}_z": p[2]})
        r.update({"ha_mm": v.ha_mm, "hm_mm": v.hm_mm, "hp_mm": v.hp_mm,
                  "wedge_ratio": v.wedge_ratio, "biconcave_ratio": v.biconcave_ratio,
                  "crush_ratio": v.crush_ratio, "height_loss": v.height_loss, "grade": v.grade,
                  "type": v.type, "trabecular_hu": v.trabecular_hu})
        rows.append(r)
    return rows


def write_result_rows(res: ScanResult, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    pd.DataFrame([scan_row(res)]).to_parquet(out_dir / "scans.parquet", index=False)
    pd.DataFrame(vertebra_rows(res)).to_parquet(out_dir / "vertebrae.parquet", index=False)
