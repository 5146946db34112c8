"""Ground-truth rows of a synthetic archive and the Parquet tables they go to.

Tables (one file each under the truth URL, never inside the archive):

* ``patients`` -- one row per patient/study: seeds, pseudonymous folder, demographics, fracture
  status from the graded truth (``max_grade``, ``fractured``), L1 HU, spine shape, variants;
* ``series`` -- one row per series folder: role, ``is_best``, geometry, protocol, transfer
  syntax, ``n_files`` actually written and the injected ``defects`` / ``defect_files``;
* ``vertebrae`` -- one row per graded vertebra: centre and the 6 keypoints in LPS mm (columns
  ``<keypoint>_x/_y/_z`` in the order of ``KEYPOINT_NAMES``), heights, grading, trabecular HU,
  the intended fracture, and ``in_best_fov`` (the body centre lies inside the best series);
* ``defects`` -- one row per injected defect with the affected archive-relative paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vertfrac_core.morphometry import KEYPOINT_NAMES
from vertfrac_core.phantom.acquisition import Acquisition
from vertfrac_core.phantom.defects import InjectedDefect
from vertfrac_core.phantom.spine import Phantom
from vertfrac_core.volume import Volume


def vertebra_rows(phantom: Phantom, study_folder: str, best: Volume | None) -> list[dict]:
    """One dict per graded vertebra of ``phantom`` (LPS mm)."""
    rows = []
    for t in phantom.truth:
        row: dict = {
            "patient_seed": phantom.spec.seed, "patient_id": phantom.spec.patient_id,
            "study_folder": study_folder, "level": t.level,
            "center_x": float(t.center_lps[0]), "center_y": float(t.center_lps[1]),
            "center_z": float(t.center_lps[2]),
        }
        for name, p in zip(KEYPOINT_NAMES, t.keypoints_lps, strict=True):
            row[f"{name}_x"], row[f"{name}_y"], row[f"{name}_z"] = (float(v) for v in p)
        row.update({
            "ha_mm": t.ha_mm, "hm_mm": t.hm_mm, "hp_mm": t.hp_mm,
            "wedge_ratio": t.grading.wedge_ratio, "biconcave_ratio": t.grading.biconcave_ratio,
            "crush_ratio": t.grading.crush_ratio, "height_loss": t.grading.height_loss,
            "grade": int(t.grading.grade), "type": t.grading.type.value,
            "trabecular_hu": t.trabecular_hu,
            "intended_type": t.intended.type.value if t.intended else None,
            "intended_height_loss": t.intended.height_loss if t.intended else None,
            "in_best_fov": _inside(best, t.center_lps),
        })
        rows.append(row)
    return rows


def _inside(volume: Volume | None, point_lps: np.ndarray) -> bool:
    if volume is None:
        return False
    ijk = volume.lps_to_voxel(np.asarray(point_lps)[None])[0]
    k, j, i = volume.shape
    return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.array([i, j, k]) - 0.5))


def patient_row(phantom: Phantom, study_folder: str, study_uid: str, best: Acquisition | None,
                vertebrae: list[dict]) -> dict:
    """The patient/study row: demographics and the truth a screening should recover."""
    spec = phantom.spec
    grades = [int(t.grading.grade) for t in phantom.truth]
    in_fov = [v for v in vertebrae if v["in_best_fov"]]
    return {
        "patient_seed": spec.seed, "patient_id": spec.patient_id, "study_folder": study_folder,
        "study_uid": study_uid, "sex": spec.sex, "age": spec.age,
        "study_date": spec.study_date.isoformat(),
        "fractured": max(grades) > 0, "max_grade": max(grades),
        "n_fractured": sum(g > 0 for g in grades),
        "fractured_levels": [t.level for t in phantom.truth if t.grading.grade > 0],
        "max_grade_in_fov": max((v["grade"] for v in in_fov), default=0),
        "levels_in_fov": [v["level"] for v in in_fov],
        "n_intended_fractures": len(spec.fractures),
        "l1_hu": phantom.l1_truth.trabecular_hu, "l1_hu_model": spec.l1_hu,
        "scoliosis_cobb_deg": spec.shape.scoliosis_cobb_deg,
        "kyphosis_deg": spec.shape.kyphosis_deg, "lordosis_deg": spec.shape.lordosis_deg,
        "rib_pairs": spec.rib_pairs, "lumbar_count": sum(lv.startswith("L") for lv in spec.levels),
        "contrast": spec.contrast, "metal": spec.metal, "bmi": spec.bmi,
        "body_scale": spec.body_scale, "has_usable_series": best is not None,
        "fov": best.fov.value if best else None, "position": best.position if best else None,
    }


def defect_rows(defects: list[InjectedDefect]) -> list[dict]:
    return [{"study_folder": d.study_folder, "series_folder": d.series_folder, "kind": d.kind.value,
             "files": list(d.files), "detail": d.detail} for d in defects]


def tables(patients: list[dict], series: list[dict], vertebrae: list[dict],
           defects: list[InjectedDefect]) -> dict[str, pd.DataFrame]:
    """The four truth tables, rows in archive order."""
    defect_columns = ["study_folder", "series_folder", "kind", "files", "detail"]
    return {
        "patients": pd.DataFrame(patients),
        "series": pd.DataFrame(series),
        "vertebrae": pd.DataFrame(vertebrae),
        "defects": pd.DataFrame(defect_rows(defects), columns=defect_columns),
    }
