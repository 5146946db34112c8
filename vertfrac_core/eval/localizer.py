"""`vertfrac evaluate localizer`: distance from true vertebral body centres to the predicted
centre line, on held-out phantoms (full generator variety, DICOM-like grids) and on real NIfTI CTs
with vertebra masks.

Real masks label whole vertebrae (body and posterior elements). The body centroid is taken as the
centroid of the mask's anterior part: voxels whose projection on the patient's antero-posterior
axis lies in the anterior 38 % of that vertebra's extent (the body is about 35 mm of a 90-100 mm
vertebra). Where a subregion mask labels the body (TPTBox label 50, 49 its cortex), that is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vertfrac_core.errors import NoSpineError
from vertfrac_core.localize.codec import distance_to_line, within_extent
from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)

VERSE_LEVELS = {i: f"C{i}" for i in range(1, 8)} | {i + 7: f"T{i}" for i in range(1, 13)} | {
    i + 19: f"L{i}" for i in range(1, 7)} | {28: "T13"}
TOTALSEG_LEVELS = {27: "L5", 28: "L4", 29: "L3", 30: "L2", 31: "L1", 32: "T12", 33: "T11",
                   34: "T10", 35: "T9", 36: "T8", 37: "T7", 38: "T6", 39: "T5", 40: "T4",
                   41: "T3", 42: "T2", 43: "T1", 44: "C7"}


@dataclass(frozen=True)
class CaseResult:
    case: str
    n_visible: int
    distances_mm: np.ndarray
    inside_extent: np.ndarray
    levels: list[str]
    failed: str | None
    seconds: float
    detail: str = ""


def visible_centres(volume: Volume, centres: np.ndarray, margin_mm: float = 5.0) -> np.ndarray:
    """Mask of centres inside the volume (at least ``margin_mm`` from its faces)."""
    ijk = volume.lps_to_voxel(centres)
    sp = np.array(volume.spacing_mm)
    shape = np.array(volume.shape[::-1])  # i, j, k
    m = margin_mm / sp
    return np.all((ijk >= m) & (ijk <= shape - 1 - m), axis=1)


def _score(name: str, volume: Volume, centres: np.ndarray, levels: list[str], localizer,
           detail: str = "") -> CaseResult:
    t0 = time.perf_counter()
    try:
        curve = localizer(volume)
    except NoSpineError as err:
        return CaseResult(name, len(centres), np.array([]), np.array([], bool), levels, str(err),
                          time.perf_counter() - t0, detail)
    secs = time.perf_counter() - t0
    if len(centres) == 0:
        return CaseResult(name, 0, np.array([]), np.array([], bool), levels, None, secs, detail)
    d = distance_to_line(centres, curve.points_lps)
    inside = within_extent(centres, curve.points_lps)
    return CaseResult(name, len(centres), d, inside, levels, None, secs, detail)


def phantom_cases(n: int, seed: int, profile: str) -> Iterable[tuple[str, Volume, np.ndarray, list[str], str]]:
    from vertfrac_core.phantom.acquisition import sample_acquisition
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_ct
    from vertfrac_core.phantom.spine import build_phantom

    for s in range(seed, seed + n):
        spec = sample_patient(s)
        ph = build_phantom(spec)
        acq = sample_acquisition(ph, np.random.default_rng([s, 17]), profile)
        vol = render_ct(ph, acq, seed=s)
        centres = np.array([t.center_lps for t in ph.truth])
        vis = visible_centres(vol, centres)
        detail = (f"{acq.fov.value} {acq.position} {acq.slice_thickness_mm}mm "
                  f"cobb={spec.shape.scoliosis_cobb_deg:.0f} kyph={spec.shape.kyphosis_deg:.0f} "
                  f"contrast={acq.contrast} metal={acq.metal} fractures={len(spec.fractures)}")
        yield (f"phantom seed {s}", vol, centres[vis],
               [t.level for t, v in zip(ph.truth, vis, strict=True) if v], detail)


def cut_by_field_of_view(kji: np.ndarray, shape: tuple[int, ...], affine_lps: np.ndarray) -> bool:
    """True when a label's voxels (rows of [k, j, i]) touch the first or last slice along the
    array axis that runs head-feet (whichever it is: sagittal and coronal stacks exist)."""
    c = int(np.argmax(np.abs(np.asarray(affine_lps)[2, :3])))  # i, j or k column
    axis = 2 - c  # position in [k, j, i]
    return bool(kji[:, axis].min() == 0 or kji[:, axis].max() == shape[axis] - 1)


def visible_labels(labels: np.ndarray, affine_lps: np.ndarray, names: dict[int, str],
                   min_voxels: int = 200) -> Iterable[tuple[int, str, np.ndarray]]:
    """(value, name, voxel indices [k, j, i]) of each labelled vertebra fully in view."""
    for value, name in sorted(names.items()):
        kji = np.argwhere(labels == value)
        if len(kji) >= min_voxels and not cut_by_field_of_view(kji, labels.shape, affine_lps):
            yield value, name, kji


def body_points(vol: Volume, kji: np.ndarray, body_mask: np.ndarray | None) -> np.ndarray:
    """LPS points of a vertebra's body: the body subregion where one is labelled (more than 50
    voxels), else the anterior 38 % of the vertebra along the patient's antero-posterior axis."""
    pts = vol.voxel_to_lps(kji[:, ::-1].astype(float))
    if body_mask is not None:
        sel = body_mask[tuple(kji.T)]
        if sel.sum() > 50:
            return pts[sel]
    y = pts[:, 1]
    return pts[y <= y.min() + 0.38 * (y.max() - y.min())]


def body_centroids(labels: np.ndarray, affine_lps: np.ndarray, names: dict[int, str],
                   body_mask: np.ndarray | None = None, min_voxels: int = 200
                   ) -> tuple[np.ndarray, list[str]]:
    """Vertebral body centroids (LPS) of the fully visible vertebrae of a label map [k, j, i]."""
    vol = Volume(hu=labels, affine_lps=affine_lps)
    out, lv = [], []
    for _, name, kji in visible_labels(labels, affine_lps, names, min_voxels):
        out.append(body_points(vol, kji, body_mask).mean(axis=0))
        lv.append(name)
    return np.array(out).reshape(-1, 3), lv


REAL_SPECS = [  # CT, vertebra label map, label names, body subregion map (TPTBox: 49/50 = body)
    ("verse/sub-verse005_ct.nii.gz", "verse/sub-verse005_seg-vert_msk.nii.gz", VERSE_LEVELS, None),
    ("verse/sub-verse006_ct.nii.gz", "verse/sub-verse006_seg-vert_msk.nii.gz", VERSE_LEVELS, None),
    ("totalseg/example_ct.nii.gz", "totalseg/example_vertebrae.nii.gz", TOTALSEG_LEVELS, None),
    ("tptbox/sub-ct_label-22_ct.nii.gz", "tptbox/sub-ct_seg-vert_label-22_msk.nii.gz", VERSE_LEVELS,
     "tptbox/sub-ct_seg-subreg_label-22_msk.nii.gz"),
]


def real_label_cases(shared_data: Path):
    """(name, CT volume, label map [k, j, i], its affine, label names, body mask or None) of the
    real CTs of ../shared/data/real that have vertebra masks."""
    from vertfrac_core.nifti import load_nifti, load_nifti_array

    real = shared_data / "real"
    for ct, msk, names, sub in REAL_SPECS:
        if not (real / ct).exists():
            continue
        mask_path = real / msk
        if not mask_path.exists():
            alt = list((real / ct).parent.glob("*seg-vert*"))
            if not alt:
                continue
            mask_path = alt[0]
        vol = load_nifti(str(real / ct))
        lab, aff = load_nifti_array(str(mask_path))
        body = None
        if sub is not None and (real / sub).exists():
            sl, _ = load_nifti_array(str(real / sub))
            body = np.isin(sl, (49, 50))
        yield ct, vol, lab, aff, names, body


def real_cases(shared_data: Path) -> Iterable[tuple[str, Volume, np.ndarray, list[str], str]]:
    """The real CTs of ../shared/data/real with their vertebral body centroids."""
    for ct, vol, lab, aff, names, body in real_label_cases(shared_data):
        centres, levels = body_centroids(lab, aff, names, body)
        yield ct, vol, centres, levels, f"{vol.shape} spacing {np.round(vol.spacing_mm, 2).tolist()}"


def evaluate(cases, localizer) -> list[CaseResult]:
    results = []
    for name, vol, centres, levels, detail in cases:
        r = _score(name, vol, centres, levels, localizer, detail)
        log.info("%s: %s", name, "FAILED " + r.failed if r.failed else
                 f"mean {r.distances_mm.mean() if len(r.distances_mm) else float('nan'):.2f} mm, "
                 f"max {r.distances_mm.max() if len(r.distances_mm) else float('nan'):.2f} mm, "
                 f"{r.inside_extent.mean() if len(r.inside_extent) else float('nan'):.2f} inside")
        results.append(r)
    return results


def summary(results: list[CaseResult]) -> dict[str, float]:
    d = np.concatenate([r.distances_mm for r in results if r.failed is None] or [np.array([])])
    ins = np.concatenate([r.inside_extent for r in results if r.failed is None] or [np.array([], bool)])
    failed_visible = sum(1 for r in results if r.failed and r.n_visible > 0)
    return {
        "cases": len(results),
        "vertebrae": int(d.size),
        "mean_mm": float(d.mean()) if d.size else float("nan"),
        "p95_mm": float(np.percentile(d, 95)) if d.size else float("nan"),
        "max_mm": float(d.max()) if d.size else float("nan"),
        "inside_extent": float(ins.mean()) if ins.size else float("nan"),
        "failures": failed_visible,
        "median_seconds": float(np.median([r.seconds for r in results])) if results else float("nan"),
    }
