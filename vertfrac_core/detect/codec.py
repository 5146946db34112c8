"""Target codec of the anchor-free detector (CenterNet style) on the straightened image.

Output grid: stride ``S`` pixels of the 1 mm image. Per vertebra: a Gaussian peak at its body
centre in the heatmap; at the centre cell (and its 8 neighbours) the sub-cell centre offset,
the 6 keypoints relative to the centre (mm / 10) and the level class. ``decode`` finds peaks,
reads the regressions there and returns vertebrae in image (row, col) pixels; a round trip of
exact targets recovers keypoints to well under a pixel (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS

STRIDE = 2
KP_SCALE = 10.0
N_LEVELS = len(GRADED_LEVELS)
N_OUT = 1 + 2 + 12 + N_LEVELS  # heat, centre offset, keypoints, level logits


@dataclass(frozen=True)
class Detection:
    centre_rc: np.ndarray  # (2,) image pixels
    keypoints_rc: np.ndarray  # (6, 2)
    score: float
    level_probs: np.ndarray  # (N_LEVELS,)


def encode(shape_hw: tuple[int, int], centres_rc: np.ndarray, keypoints_rc: np.ndarray,
           levels: list[str], sigma_px: float = 4.0) -> dict[str, np.ndarray]:
    """Targets on the output grid for an image of ``shape_hw`` pixels."""
    h, w = (shape_hw[0] + STRIDE - 1) // STRIDE, (shape_hw[1] + STRIDE - 1) // STRIDE
    heat = np.zeros((h, w), np.float32)
    reg = np.zeros((14, h, w), np.float32)
    reg_mask = np.zeros((h, w), np.float32)
    level = np.full((h, w), -1, np.int64)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sig = sigma_px / STRIDE
    for c, kp, lv in zip(centres_rc, keypoints_rc, levels, strict=True):
        cc = np.asarray(c, dtype=np.float32) / STRIDE
        heat = np.maximum(heat, np.exp(-((yy - cc[0]) ** 2 + (xx - cc[1]) ** 2) / (2 * sig * sig)))
        ci, cj = int(np.floor(cc[0])), int(np.floor(cc[1]))
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                i, j = ci + di, cj + dj
                if 0 <= i < h and 0 <= j < w:
                    cell = np.array([i, j], np.float32)
                    reg[0:2, i, j] = cc - cell  # offset from this cell to the centre (cells)
                    reg[2:14, i, j] = ((kp - c) / KP_SCALE).reshape(-1)
                    reg_mask[i, j] = 1.0 if (di, dj) == (0, 0) else 0.5
                    level[i, j] = GRADED_LEVELS.index(lv) if lv in GRADED_LEVELS else -1
    return {"heat": heat, "reg": reg, "reg_mask": reg_mask, "level": level}


def decode(out: np.ndarray, threshold: float = 0.3, min_dist_px: float = 9.0) -> list[Detection]:
    """Detections from a network output (N_OUT, h, w) (heat as probability in channel 0)."""
    from scipy.ndimage import maximum_filter

    heat = out[0]
    peaks = (heat == maximum_filter(heat, size=3)) & (heat > threshold)
    ij = np.argwhere(peaks)
    order = np.argsort(-heat[peaks])
    ij = ij[order]
    dets: list[Detection] = []
    for i, j in ij:
        c = (np.array([i, j], np.float32) + out[1:3, i, j]) * STRIDE
        if any(np.linalg.norm(c - d.centre_rc) < min_dist_px for d in dets):
            continue
        kp = c + out[3:15, i, j].reshape(6, 2) * KP_SCALE
        logits = out[15:, i, j]
        p = np.exp(logits - logits.max())
        dets.append(Detection(centre_rc=c, keypoints_rc=kp, score=float(heat[i, j]),
                              level_probs=p / p.sum()))
    dets.sort(key=lambda d: float(d.centre_rc[0]))
    return dets


def target_as_output(t: dict[str, np.ndarray]) -> np.ndarray:
    """An ideal network output from targets (for round-trip tests)."""
    h, w = t["heat"].shape
    out = np.zeros((N_OUT, h, w), np.float32)
    out[0] = t["heat"]
    out[1:15] = t["reg"]
    lv = t["level"]
    out[15:] = -10.0
    ii, jj = np.nonzero(lv >= 0)
    out[15 + lv[ii, jj], ii, jj] = 10.0
    return out
