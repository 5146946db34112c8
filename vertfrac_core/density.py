"""Trabecular attenuation per vertebra and the study's bone-density flag.

The region of interest is an ellipsoid at the body centre, well inside the cortex and away from
the endplates: half-axes 30 % of the middle height along the body's axis and 28 % of the body's
antero-posterior depth across it (both from the 6 keypoints). Its median HU (trilinear samples
every 1 mm) is the vertebra's trabecular attenuation. The study value is L1's, or the nearest
level in view, saying which; flags follow Pickhardt et al. (Ann Intern Med 2013).
"""

from __future__ import annotations

import numpy as np

from vertfrac_core.anatomy import level_index
from vertfrac_core.resample import sample_lps
from vertfrac_core.volume import Volume


def trabecular_hu(volume: Volume, keypoints_lps: np.ndarray) -> float:
    """Median HU of the trabecular region of a body given its (6, 3) keypoints (LPS)."""
    kp = np.asarray(keypoints_lps, dtype=np.float64)
    centre = kp.mean(axis=0)
    axis = (kp[0] + kp[2] + kp[4]) / 3 - (kp[1] + kp[3] + kp[5]) / 3  # lower -> upper
    hm = float(np.linalg.norm(kp[2] - kp[3]))
    ap = (kp[0] + kp[1]) / 2 - (kp[4] + kp[5]) / 2  # posterior -> anterior
    depth = float(np.linalg.norm(ap))
    if hm < 3 or depth < 8:
        return float("nan")
    e_s = axis / np.linalg.norm(axis)
    e_a = ap - (ap @ e_s) * e_s
    e_a /= np.linalg.norm(e_a)
    e_l = np.cross(e_s, e_a)
    rs, ra, rl = 0.30 * hm, 0.28 * depth, 0.28 * depth
    g = np.arange(-1.0, 1.0001, 1.0 / max(2, int(max(rs, ra, rl))))
    s, a, l_ = np.meshgrid(g * rs, g * ra, g * rl, indexing="ij")
    inside = (s / rs) ** 2 + (a / ra) ** 2 + (l_ / rl) ** 2 <= 1.0
    pts = centre + s[inside, None] * e_s + a[inside, None] * e_a + l_[inside, None] * e_l
    vals = sample_lps(volume, pts)
    return float(np.median(vals)) if vals.size else float("nan")


def study_l1(levels: list[str], hu: list[float]) -> tuple[float | None, str | None]:
    """(HU, level): L1 if measured, else the nearest measured level (by anatomical order)."""
    cands = [(abs(level_index(lv) - level_index("L1")), lv, h) for lv, h in zip(levels, hu, strict=True)
             if h is not None and np.isfinite(h)]
    if not cands:
        return None, None
    _, lv, h = min(cands, key=lambda c: (c[0], c[1] != "L1"))
    return float(h), lv
