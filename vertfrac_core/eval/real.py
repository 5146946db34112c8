"""`vertfrac evaluate real`: step 2 on the real CTs of ../shared/data/real, vertebra by vertebra.

For every vertebra whose mask is fully in view (not cut by the first or last slice): was a body
detected there (a predicted centre inside that vertebra's mask), with which level, and do the
predicted heights agree with the mask? Mask heights are measured along the predicted vertebra's
superior axis (the only thing taken from the prediction) but at the mask's own walls: lines
through the mask within 3 mm (or a voxel) of its mid-sagittal plane, in a 3 mm (or 1.5 voxel)
wide strip just inside the mask's anterior wall, one at the middle of its antero-posterior
extent and one just inside its posterior wall; each line's run through the mask is a height,
and a strip's height is the median of its lines' (see :func:`_mask_heights`). The body is the
TPTBox body subregion where there is one, else the vertebra's mask near the mid-sagittal plane
from the front wall back to the canal (the first gap behind it). Published Genant grades (VerSe)
are shown beside.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vertfrac_core.volume import Volume


@dataclass
class RealRow:
    case: str
    level: str
    detected: bool
    predicted_level: str = "-"
    pred_h: tuple[float, float, float] | None = None
    mask_h: tuple[float, float, float] | None = None
    grade: int | None = None
    published_grade: int | None = None
    level_confidence: float | None = None
    slice_mm: float | None = None  # the slice thickness analysed, where the CT was reconstructed thicker

    @property
    def max_height_diff(self) -> float | None:
        if self.pred_h is None or self.mask_h is None or any(np.isnan(self.mask_h)):
            return None
        return float(np.max(np.abs(np.subtract(self.pred_h, self.mask_h))))


def _mask_heights(points: np.ndarray, kp: np.ndarray, grid: Volume,
                  whole_vertebra: bool = False) -> tuple[float, float, float]:
    """(ha, hm, hp) of a body's mask, given as the LPS centres of its voxels on ``grid`` (the
    label map's geometry): lines parallel to the predicted vertebra's superior axis, 0.5 mm
    apart within ``max(3 mm, a voxel)`` of the mask's median sagittal plane, are drawn through
    three strips: just inside the mask's own anterior wall (1 mm in, 3 mm or 1.5 voxels wide),
    at the middle of its antero-posterior extent and just inside its posterior wall. Each line's
    height is the length of its run through the mask (voxels looked up by nearest neighbour, so
    a run is the extent of voxel boxes); a strip's height is the median over its lines. That is
    the mask's version of a height measured along one line, as the keypoints measure it; the
    largest extent of the strip's voxels, used until session 8, added the endplates' tilt and
    coronal curvature within the strip (0.3-6.5 mm on the 9 real bodies of session 8, the most
    on TotalSegmentator's 3 mm labels). Only the axes come from the prediction, so a
    prediction shifted off the body does not move the reference. With ``whole_vertebra`` (no
    body subregion labelled), the points are the whole vertebra's and the body is cut from them
    at the canal (the first antero-posterior gap behind the front wall near the mid-sagittal
    plane)."""
    sup = np.mean([kp[0] - kp[1], kp[2] - kp[3], kp[4] - kp[5]], axis=0)
    e_s = sup / np.linalg.norm(sup)
    ap = 0.5 * (kp[0] + kp[1]) - 0.5 * (kp[4] + kp[5])
    ap = ap - (ap @ e_s) * e_s
    e_a = ap / np.linalg.norm(ap)
    e_l = np.cross(e_s, e_a)
    spacing = np.array(grid.spacing_mm)
    axes = grid.affine_lps[:3, :3] / spacing  # unit voxel axes (i, j, k) in LPS
    vox_s, vox_a, vox_l = (float(np.abs(axes.T @ e) @ spacing) for e in (e_s, e_a, e_l))
    c = kp.mean(axis=0)
    rel = points - c
    a, s, lat = rel @ e_a, rel @ e_s, rel @ e_l
    half = max(3.0, vox_l)
    lat0 = float(np.median(lat))
    near = np.abs(lat - lat0) <= half
    if near.sum() < 3:
        return float("nan"), float("nan"), float("nan")
    front, back = float(a[near].max()), float(a[near].min())
    if whole_vertebra:
        # near the mid-sagittal plane the canal separates the body from the arch: the body is the
        # run of mask from the front wall back to the first gap of 2 mm or more (or a voxel and a half)
        gap = max(2.0, 1.5 * vox_a)
        order = np.sort(a[near])[::-1]
        steps = np.nonzero(-np.diff(order) >= gap)[0]
        if steps.size:
            back = float(order[steps[0]])
            near &= a >= back
    # the body's voxels as a box of booleans on the label grid
    ijk = np.round(grid.lps_to_voxel(points[near])).astype(int)
    lo_ijk = ijk.min(axis=0) - 1
    box = np.zeros(tuple(ijk.max(axis=0) - lo_ijk + 2), bool)
    box[tuple((ijk - lo_ijk).T)] = True
    s0 = float(np.median(s[near]))
    step = 0.25
    ts = np.arange(s[near].min() - s0 - 2.0 * vox_s, s[near].max() - s0 + 2.0 * vox_s + 1e-9, step)
    w = max(3.0, 1.5 * vox_a)
    mid = 0.5 * (front + back)
    out = []
    for lo, hi in ((front - 1.0 - w, front - 1.0), (mid - 0.5 * w, mid + 0.5 * w), (back + 1.0, back + 1.0 + w)):
        av, lv = (g.ravel() for g in np.meshgrid(np.arange(lo, hi + 1e-9, 0.5),
                                                 np.arange(lat0 - half, lat0 + half + 1e-9, 0.5)))
        lines = (c + av[:, None, None] * e_a + lv[:, None, None] * e_l
                 + (s0 + ts)[None, :, None] * e_s)  # (lines, samples, 3)
        q = np.round(grid.lps_to_voxel(lines.reshape(-1, 3))).astype(int) - lo_ijk
        ok = np.all((q >= 0) & (q < box.shape), axis=1)
        inside = np.zeros(len(q), bool)
        inside[ok] = box[tuple(q[ok].T)]
        inside = inside.reshape(len(av), len(ts))
        hit = inside.any(axis=1)
        # first to last voxel of each line: a vein's channel or a hole inside does not cut it
        first = np.argmax(inside, axis=1)
        last = len(ts) - 1 - np.argmax(inside[:, ::-1], axis=1)
        runs = ((last - first + 1) * step)[hit]
        out.append(float(np.median(runs)) if len(runs) >= 3 else float("nan"))
    return out[0], out[1], out[2]


#: the voxel sizes of the shared references (VerSe 1 mm, TPTBox 1.5 mm, TotalSegmentator 3 mm)
REFERENCE_VOXELS_MM: tuple[float, ...] = (1.0, 1.5, 3.0)
LUMBAR = ("L1", "L2", "L3", "L4", "L5")


def phantom_mask_heights(vertebra, voxel_mm: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """:func:`_mask_heights` of one phantom body drawn as a label map would draw it: the voxel
    centres inside the body, on an axis-aligned grid of ``voxel_mm`` with a random phase."""
    b = vertebra.body
    r = max(b.half_depth, b.half_width, b.hp) + 2.0 * voxel_mm + 4.0
    off = rng.uniform(0.0, voxel_mm, 3)
    c = np.asarray(vertebra.origin_lps, float)
    axes = [np.arange(np.floor((c[d] - r - off[d]) / voxel_mm), np.ceil((c[d] + r - off[d]) / voxel_mm) + 1)
            for d in range(3)]
    pts = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1) * voxel_mm + off
    aff = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    aff[:3, 3] = off
    grid = Volume(hu=np.zeros((2, 2, 2), np.int8), affine_lps=aff)
    return _mask_heights(pts[vertebra.body_contains_many(pts)], vertebra.keypoints_lps, grid)


def reference_resolution(seeds: range, voxels: tuple[float, ...] = REFERENCE_VOXELS_MM,
                         levels: tuple[str, ...] = LUMBAR) -> dict[float, np.ndarray]:
    """What a label map of each voxel size can tell about heights: per voxel size, the (N, 3)
    differences (mask - truth) of ha/hm/hp of the phantom bodies of ``levels`` (seeds ``seeds``)
    drawn as labels (:func:`phantom_mask_heights`) and measured as the real masks are. A
    prediction equal to the truth differs from such a reference by exactly this much."""
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.spine import build_phantom

    out: dict[float, list] = {v: [] for v in voxels}
    for seed in seeds:
        ph = build_phantom(sample_patient(seed))
        rng = np.random.default_rng([seed, 5])
        for t in ph.truth:
            if t.level not in levels:
                continue
            for v in voxels:
                mh = phantom_mask_heights(ph.vertebra(t.level), v, rng)
                out[v].append(np.subtract(mh, (t.ha_mm, t.hm_mm, t.hp_mm)))
    return {v: np.array(d).reshape(-1, 3) for v, d in out.items()}


def _resolution_summary(res: dict[float, np.ndarray], seeds: range) -> list[str]:
    """Lines of the real table on what its references can resolve (:func:`reference_resolution`)."""
    lines = [f"What the references can resolve: the same measurement on the masks of phantom bodies "
             f"L1-L5 (seeds {seeds.start}-{seeds.stop - 1}) drawn at voxel centres, against their true "
             f"heights, i.e. the difference a perfect prediction would show:", "",
             "| voxel mm | bodies | all three within 2 mm | ha/hm/hp median abs mm | ha/hm/hp 95th pct abs mm | max abs mm |",
             "|---|---|---|---|---|---|"]
    for v, d in res.items():
        ad = np.abs(d)
        if not len(ad):
            continue
        med = "/".join(f"{x:.1f}" for x in np.median(ad, axis=0))
        p95 = "/".join(f"{x:.1f}" for x in np.percentile(ad, 95, axis=0))
        lines.append(f"| {v:g} | {len(ad)} | {np.mean(ad.max(axis=1) <= 2.0):.2f} | {med} | {p95} | {ad.max():.1f} |")
    return lines


def published_grades(shared_data: Path) -> dict[tuple[str, str], int]:
    path = shared_data / "real" / "verse" / "genant_grades.csv"
    if not path.exists():
        return {}
    with open(path) as fh:
        return {(r["subject"], r["level"]): int(r["genant_grade"]) for r in csv.DictReader(fh)}


#: the sources whose masks were drawn on thin slices (1-1.5 mm): their CTs are also evaluated
#: at archival slice thicknesses, against the same masks (TotalSegmentator's example is 3 mm already)
THIN_SOURCES = ("verse", "tptbox")


def evaluate_real(shared_data: Path, models, thickness_mm: float | None = None,
                  noise_hu: float = 0.0, noise_seed: int = 0) -> list[RealRow]:
    """One row per vertebra fully in view in a mask (and one per detection outside every mask).
    With ``thickness_mm``, only the :data:`THIN_SOURCES` CTs, each reconstructed with slices
    that thick (:func:`~vertfrac_core.resample.thicker_slices`), against their masks as drawn.
    With ``noise_hu``, white noise of that standard deviation (seeded by ``noise_seed``) is added
    to each CT's voxels inside the scan: the same patients on a noisier scan."""
    from vertfrac_core.analyze import analyze_volume
    from vertfrac_core.eval.detector import with_noise
    from vertfrac_core.eval.localizer import body_points, real_label_cases, visible_labels
    from vertfrac_core.resample import thicker_slices
    from vertfrac_core.result import ScanStatus

    grades = published_grades(shared_data)
    rows: list[RealRow] = []
    for i, (name, vol, lab, aff, names, body) in enumerate(real_label_cases(shared_data)):
        if thickness_mm is not None:
            if name.split("/")[0] not in THIN_SOURCES:
                continue
            vol = thicker_slices(vol, thickness_mm)
        if noise_hu > 0:
            vol = Volume(hu=with_noise(vol.hu, noise_hu, 1000 * noise_seed + i), affine_lps=vol.affine_lps,
                         meta=vol.meta)
        slice_mm = vol.meta.get("thicker_slices_mm")
        res = analyze_volume(vol, source=name, models=models)
        preds = res.vertebrae if res.status == ScanStatus.OK else []
        labvol = Volume(hu=lab, affine_lps=aff)
        subject = name.split("/")[-1].split("_")[0]
        # which label each predicted centre falls in
        hit = []
        for v in preds:
            ijk = np.round(labvol.lps_to_voxel(np.array([v.center_lps]))[0]).astype(int)
            inside = all(0 <= ijk[d] < lab.shape[2 - d] for d in range(3))
            hit.append(int(lab[ijk[2], ijk[1], ijk[0]]) if inside else 0)
        for value, level, kji in visible_labels(lab, aff, names):
            row = RealRow(case=name, level=level, detected=value in hit,
                          published_grade=grades.get((subject, level)), slice_mm=slice_mm)
            if row.detected:
                v = preds[hit.index(value)]
                row.predicted_level, row.grade, row.level_confidence = v.level, v.grade, v.level_confidence
                row.pred_h = (v.ha_mm, v.hm_mm, v.hp_mm)
                whole = body is None
                pts = labvol.voxel_to_lps(kji[:, ::-1].astype(float)) if whole else body_points(labvol, kji, body)
                row.mask_h = _mask_heights(pts, np.array(v.keypoints_lps), labvol, whole_vertebra=whole)
            rows.append(row)
        for v, h in zip(preds, hit, strict=True):
            if h == 0 or h not in names:
                rows.append(RealRow(case=name, level="(none)", detected=False, predicted_level=v.level,
                                    pred_h=(v.ha_mm, v.hm_mm, v.hp_mm), grade=v.grade))
    return rows


def _height_diffs(rows: list[RealRow]) -> np.ndarray:
    """(N, 3) predicted minus mask ha, hm, hp of the rows that have both."""
    return np.array([np.subtract(r.pred_h, r.mask_h) for r in rows
                     if r.pred_h is not None and r.mask_h is not None and not np.any(np.isnan(r.mask_h))])


@dataclass
class _Tally:
    """The counts each summary of a set of rows starts from."""

    truth: list[RealRow]  # vertebrae fully in view in a mask
    found: list[RealRow]  # ... detected
    right: int  # ... with the mask's level
    within_2mm: int  # ... with all three heights within 2 mm
    diffs: np.ndarray  # (N, 3) predicted - mask heights of the found ones that have both


def _tally(rows: list[RealRow]) -> _Tally:
    truth = [r for r in rows if r.level != "(none)"]
    found = [r for r in truth if r.detected]
    return _Tally(truth, found, sum(r.predicted_level == r.level for r in found),
                  sum((x := r.max_height_diff) is not None and x <= 2.0 for r in found), _height_diffs(found))


def _median_abs(d: np.ndarray) -> str:
    return "/".join(f"{x:.1f}" for x in np.median(np.abs(d), axis=0)) if d.size else "-"


def _height_summary(found: list[RealRow]) -> list[str]:
    """Per height (ha, hm, hp): single heights within 2 mm, median absolute and mean signed
    difference (predicted - mask)."""
    d = _height_diffs(found)
    if d.size == 0:
        return ["No heights to compare."]
    within = int((np.abs(d) <= 2.0).sum())
    med = _median_abs(d)
    mean = "/".join(f"{x:+.1f}" for x in d.mean(axis=0))
    return [f"Single heights within 2 mm: {within}/{d.size}; ha/hm/hp median absolute difference {med} mm, "
            f"mean signed difference (predicted - mask) {mean} mm."]


#: what each source's masks are (the data's README): only VerSe's are experts' drawings
SOURCE_KIND = {"verse": "expert masks, 1 mm", "totalseg": "a model's labels, 3 mm",
               "tptbox": "TPTBox sample masks, 1.5 mm"}


def _by_source(found: list[RealRow]) -> str:
    """Bodies with all three heights within 2 mm, per source of the reference masks."""
    parts = []
    for src in dict.fromkeys(r.case.split("/")[0] for r in found):
        d = [x for r in found if r.case.split("/")[0] == src and (x := r.max_height_diff) is not None]
        parts.append(f"{src} ({SOURCE_KIND.get(src, 'masks')}): {sum(x <= 2.0 for x in d)}/{len(d)}")
    return "All three heights within 2 mm, by reference: " + "; ".join(parts) + "."


def _level_confidence_summary(found: list[RealRow]) -> str:
    """Right levels among those stated with confidence (>= CONFIDENT_LEVEL) and among the rest."""
    from vertfrac_core.detect.levels import CONFIDENT_LEVEL

    conf = [(r, r.level_confidence) for r in found if r.level_confidence is not None]
    sure = [r for r, c in conf if c >= CONFIDENT_LEVEL]
    unsure = [r for r, c in conf if c < CONFIDENT_LEVEL]
    return (f"Levels stated with confidence >= {CONFIDENT_LEVEL}: {len(sure)}, of them right: "
            f"{sum(r.predicted_level == r.level for r in sure)}; below it (marked \"?\" in the picture): "
            f"{len(unsure)}, of them right: {sum(r.predicted_level == r.level for r in unsure)}.")


def _slice_note(row: RealRow, thickness_mm: float) -> str:
    """" (at 4.5 mm)" where the slices analysed are not ``thickness_mm`` (whole voxels are
    averaged: 1.5 mm voxels make 3 or 4.5 mm slices); " (as scanned)" where none were averaged."""
    if row.slice_mm is None:
        return " (as scanned)"
    return "" if abs(row.slice_mm - thickness_mm) < 0.05 else f" (at {row.slice_mm:g} mm)"


def thickness_summary(by_thickness: dict[float, list[RealRow]]) -> list[str]:
    """Markdown lines: the thin-slice CTs' bodies at each slice thickness (rows of
    :func:`evaluate_real` with ``thickness_mm``), against the same masks."""
    lines = [
        "Real anatomy at archival slice thicknesses: the CTs whose masks were drawn on thin slices "
        f"({', '.join(THIN_SOURCES)}) reconstructed again with contiguous slices of each thickness "
        "(runs of voxels along the head-feet axis averaged: `vertfrac_core.resample.thicker_slices`), "
        "analysed from scratch and compared with the same masks. The masks do not change with the "
        "thickness; what a thick slice blurs is what is measured:",
        "",
        "| slice mm | bodies | detected | right level | all three heights within 2 mm | "
        "ha/hm/hp median abs mm | ha/hm/hp mean signed mm | largest difference per body mm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for th, rows in by_thickness.items():
        t = _tally(rows)
        mean = "/".join(f"{x:+.1f}" for x in t.diffs.mean(axis=0)) if t.diffs.size else "-"
        per = ", ".join(f"{r.case.split('/')[0]} {r.level}{_slice_note(r, th)} "
                        f"{'-' if (x := r.max_height_diff) is None else f'{x:.1f}'}" for r in t.found)
        lines.append(f"| {th:g} | {len(t.truth)} | {len(t.found)} | {t.right} | {t.within_2mm}/{len(t.found)} | "
                     f"{_median_abs(t.diffs)} | {mean} | {per} |")
    return lines


def noise_summary(rows: list[RealRow], noisy: dict[tuple[float, int], list[RealRow]]) -> list[str]:
    """Markdown lines: the real CTs as scanned (``rows``) and with added white noise (rows of
    :func:`evaluate_real` with ``noise_hu``, keyed by (noise, realisation))."""
    native = sum(r.grade is not None and r.grade >= 1 for r in rows)
    lines = [
        "The same real CTs on a noisier scan: white noise added to their voxels (seeded; a lower dose "
        f"or a sharper kernel than they were scanned with). As scanned, {native} of these bodies "
        "are graded >= 1; a grade that comes with the noise is a false call of it:",
        "",
        "| added noise HU | realisation | bodies | detected | right level | all three heights within 2 mm | "
        "graded >= 1 | graded >= 2 | ha/hm/hp median abs mm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (hu, rep), rs in [((0.0, 0), rows), *noisy.items()]:
        t = _tally(rs)
        graded = [r.grade for r in rs if r.grade is not None]
        lines.append(f"| {hu:g}{' (as scanned)' if hu == 0 else ''} | {rep if hu else '-'} | {len(t.truth)} | "
                     f"{len(t.found)} | {t.right} | {t.within_2mm}/{len(t.found)} | "
                     f"{sum(g >= 1 for g in graded)} | {sum(g >= 2 for g in graded)} | {_median_abs(t.diffs)} |")
    return lines


def write_real_table(rows: list[RealRow], out: Path, note: str,
                     resolution: tuple[dict[float, np.ndarray], range] | None = None,
                     thick: dict[float, list[RealRow]] | None = None,
                     noisy: dict[tuple[float, int], list[RealRow]] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "step2_real.md"
    t = _tally(rows)
    measured = sum(r.max_height_diff is not None for r in t.found)
    fp = [r for r in rows if r.level == "(none)"]
    lines = [
        "# Step 2 on the real CTs", "", note, "",
        f"Vertebrae fully in view: {len(t.truth)}; detected: {len(t.found)}; with the right level: "
        f"{t.right}; detections outside every labelled vertebra: {len(fp)}; height agreement with the "
        f"mask within 2 mm (all three heights): {t.within_2mm}/{measured}.", "",
        _by_source(t.found), "",
        _level_confidence_summary(t.found), "",
        *_height_summary(t.found), "",
        "| case | level (mask) | detected | predicted level | level confidence | ha/hm/hp predicted mm | ha/hm/hp mask mm | max diff mm | grade | published grade |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def h(x):
        return "-" if x is None else "/".join("-" if np.isnan(v) else f"{v:.1f}" for v in x)

    for r in rows:
        d = r.max_height_diff
        lines.append(f"| {r.case} | {r.level} | {'yes' if r.detected else 'no'} | {r.predicted_level} | "
                     f"{'-' if r.level_confidence is None else f'{r.level_confidence:.2f}'} | {h(r.pred_h)} | {h(r.mask_h)} | {'-' if d is None else f'{d:.1f}'} | "
                     f"{'-' if r.grade is None else r.grade} | "
                     f"{'-' if r.published_grade is None else r.published_grade} |")
    if resolution is not None:
        lines += ["", *_resolution_summary(*resolution)]
    if thick:
        lines += ["", *thickness_summary(thick)]
    if noisy:
        lines += ["", *noise_summary(rows, noisy)]
    path.write_text("\n".join(lines) + "\n")
    return path
