"""Second look at the centre line: move it onto the body centres that step 2 measured.

Step 1's network sees the scan at 4 mm and places the line within a few millimetres of the
body centres (on real CT it tends to sit behind them). Step 2 then finds every body on the
straightened image with edge-refined keypoints: their mean is the body centre in the
sagittal plane of the straightening to well under a millimetre. The lateral position comes from
the body's side walls, measured on a line across the body at mid-height (on each side, the
first cortical ridge from the centre and the steepest fall just beyond it: the cortex against
the soft tissue, a contrast-filled aorta or the lung, not the lung's own edge further out).
The correction (body centre minus line) is interpolated along the line, held constant beyond
the first and last body, smoothed over about one vertebra, and applied to the whole line,
which keeps its extent. The keypoints themselves move to the body's own
mid-sagittal plane by the same lateral offset (no second straightening is needed: the
keypoints are already 3D points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vertfrac_core.reformat import Reformation
from vertfrac_core.resample import sample_lps
from vertfrac_core.volume import Volume


@dataclass(frozen=True)
class LineRefineSettings:
    lateral_reach_mm: float = 40.0
    min_width_mm: float = 18.0
    max_width_mm: float = 80.0
    max_lateral_shift_mm: float = 15.0
    smooth_mm: float = 12.0
    max_correction_mm: float = 15.0


def lateral_centre(volume: Volume, ref: Reformation, row: float, col: float, height_px: float,
                   s: LineRefineSettings = LineRefineSettings()) -> float | None:
    """Lateral offset (mm along the line's left axis) of the body centre at (row, col) of the
    straightened image, from its side walls; None when the walls are not clear."""
    from scipy.ndimage import gaussian_filter1d

    step = 0.5  # mm between samples across the body
    u = np.arange(-s.lateral_reach_mm, s.lateral_reach_mm + 1e-9, step)
    dr = np.linspace(-0.25 * height_px, 0.25 * height_px, 5)
    dc = np.linspace(-4.0, 4.0, 5)
    rr, cc, uu = np.meshgrid(row + dr, col + dc, u, indexing="ij")
    pts = ref.to_lps(rr.ravel(), cc.ravel(), uu.ravel())
    prof = sample_lps(volume, pts).reshape(rr.shape).mean(axis=(0, 1))
    sm = gaussian_filter1d(prof, 1.0)
    g = np.gradient(sm, u)
    mid = len(u) // 2
    start = int(4.0 / step)  # a body is at least 8 mm wide: skip the first 4 mm on each side
    fall_reach = int(3.0 / step)
    inner = float(np.median(sm[mid - start: mid + start + 1]))
    walls = []
    # scanned from the centre outwards: the first cortical ridge (a local maximum 120 HU above
    # the trabecular bone), then the steepest fall within 3 mm beyond it
    for sign in (1, -1):
        idx = np.arange(mid + sign * start, -1 if sign < 0 else len(u), sign)
        idx = idx[(idx > 0) & (idx < len(u) - 1)]
        ridge = next((int(i) for i in idx if sm[i] >= inner + 120.0 and sm[i] >= sm[i - 1] and sm[i] >= sm[i + 1]), None)
        if ridge is None:
            return None
        after = np.arange(ridge, ridge + sign * (fall_reach + 1), sign)
        after = after[(after >= 0) & (after < len(u))]
        fall = -g[after] * sign
        k = int(np.argmax(fall))
        if fall[k] <= 20.0:
            return None
        walls.append(float(u[after[k]]))
    walls.sort()
    width = walls[1] - walls[0]
    centre = 0.5 * (walls[0] + walls[1])
    if not (s.min_width_mm <= width <= s.max_width_mm) or abs(centre) > s.max_lateral_shift_mm:
        return None
    return centre


def body_lateral_offsets(volume: Volume, ref: Reformation, keypoints_rc: list[np.ndarray],
                         settings: LineRefineSettings = LineRefineSettings()) -> list[float | None]:
    """Per body (keypoints on the straightened image), the lateral offset of its centre from the
    straightening plane in mm (None where the side walls are not clear)."""
    out: list[float | None] = []
    for kp in keypoints_rc:
        kp = np.asarray(kp, float)
        r, c = kp.mean(axis=0)
        h = float(np.mean(kp[[1, 3, 5], 0] - kp[[0, 2, 4], 0]))
        out.append(lateral_centre(volume, ref, float(r), float(c), h, settings))
    return out


def refine_line(ref: Reformation, keypoints_rc: list[np.ndarray], lateral: list[float | None],
                settings: LineRefineSettings = LineRefineSettings()) -> np.ndarray | None:
    """A corrected centre line (N, 3) LPS at 1 mm through the measured body centres, or None
    when fewer than two bodies were measured (the line is kept as it is)."""
    from scipy.ndimage import gaussian_filter1d

    st = ref.settings.step_mm
    col0 = ref.settings.line_col
    rows, deltas = [], []
    for kp, lat in zip(keypoints_rc, lateral, strict=True):
        r, c = np.asarray(kp, float).mean(axis=0)
        d = ref.to_lps(r, c, 0.0 if lat is None else lat)[0] - ref.to_lps(r, col0, 0.0)[0]
        if np.linalg.norm(d) <= settings.max_correction_mm:
            rows.append(r)
            deltas.append(d)
    if len(rows) < 2:
        return None
    order = np.argsort(rows)
    rows_a, deltas_a = np.asarray(rows)[order], np.asarray(deltas)[order]
    s_line = np.arange(0.0, ref.length_mm + 1e-9, 1.0)
    r_line = (s_line - ref.s_values[0]) / st
    dense = np.stack([np.interp(r_line, rows_a, deltas_a[:, k]) for k in range(3)], axis=1)
    dense = gaussian_filter1d(dense, settings.smooth_mm / 2.0, axis=0, mode="nearest")
    return ref.to_lps(r_line, np.full_like(r_line, col0), 0.0) + dense
