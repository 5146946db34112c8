"""The verifiable picture: the straightened sagittal image with every vertebra's 6 keypoints, its
three heights, level label and grade colour; beside it the same keypoints on a plain
mid-sagittal view of the original volume. A radiologist can check each number by eye.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vertfrac_core.detect.levels import level_label
from vertfrac_core.reformat import Reformation
from vertfrac_core.resample import sagittal_slice
from vertfrac_core.volume import Volume

GRADE_COLOURS = {0: "#2ecc71", 1: "#f1c40f", 2: "#e67e22", 3: "#e74c3c"}
WINDOW = (-250.0, 1250.0)


def render_png(path: Path, volume: Volume, ref: Reformation, image: np.ndarray,
               rows: Sequence[dict], title: str = "") -> Path:
    """Write the picture. ``rows``: per vertebra a dict with level, grade, type, ha_mm, hm_mm,
    hp_mm, keypoints_rc (6, 2) and keypoints_lps (6, 3); level_confidence if known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offsets = ref.settings.slab_offsets_mm
    mid = image[offsets.index(0.0) if 0.0 in offsets else 0] if image.ndim == 3 else image
    h = mid.shape[0]
    fig_h = max(6.0, min(16.0, h / 45.0))
    fig, axes = plt.subplots(1, 2, figsize=(11, fig_h), facecolor="black",
                             gridspec_kw={"width_ratios": [1.0, 1.0]})
    ax = axes[0]
    ax.imshow(mid, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], interpolation="bilinear")
    for r in rows:
        kp = np.asarray(r["keypoints_rc"])
        col = GRADE_COLOURS.get(int(r["grade"]), "white")
        for a, b in ((0, 1), (2, 3), (4, 5)):  # anterior, middle, posterior heights
            ax.plot([kp[a, 1], kp[b, 1]], [kp[a, 0], kp[b, 0]], color=col, lw=1.2)
        ax.plot([kp[0, 1], kp[2, 1], kp[4, 1]], [kp[0, 0], kp[2, 0], kp[4, 0]], color=col, lw=0.5, alpha=0.7)
        ax.plot([kp[1, 1], kp[3, 1], kp[5, 1]], [kp[1, 0], kp[3, 0], kp[5, 0]], color=col, lw=0.5, alpha=0.7)
        ax.scatter(kp[:, 1], kp[:, 0], s=8, c=col, edgecolors="black", linewidths=0.3, zorder=3)
        label = level_label(r)
        if int(r["grade"]) > 0:
            label += f"  G{int(r['grade'])} {r['type']}"
        ax.text(kp[:, 1].max() + 4, kp[:, 0].mean(), label, color=col, fontsize=7, va="center",
                fontweight="bold")
        ax.text(kp[:, 1].min() - 4, kp[:, 0].mean(),
                f"{r['ha_mm']:.0f}/{r['hm_mm']:.0f}/{r['hp_mm']:.0f}", color="white", fontsize=5.5,
                va="center", ha="right")
    ax.set_title("straightened sagittal (anterior left)\nheights ha/hm/hp mm, colour = Genant grade",
                 color="white", fontsize=8)
    ax.axis("off")
    # plain mid-sagittal view of the original volume, same keypoints projected
    ax2 = axes[1]
    if rows:
        pts = np.concatenate([np.asarray(r["keypoints_lps"]) for r in rows])
    else:
        pts = ref.to_lps(np.array([0.0, ref.shape[1] - 1.0]), np.array([70.0, 70.0]))
    x = float(np.median(pts[:, 0]))
    y0, y1 = float(pts[:, 1].min()) - 70, float(pts[:, 1].max()) + 90
    z0, z1 = float(pts[:, 2].min()) - 30, float(pts[:, 2].max()) + 30
    sag = sagittal_slice(volume, x, (y0, y1), (z0, z1))
    ax2.imshow(sag, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], interpolation="bilinear")
    for r in rows:
        kp = np.asarray(r["keypoints_lps"])
        col = GRADE_COLOURS.get(int(r["grade"]), "white")
        ax2.scatter(kp[:, 1] - y0, z1 - kp[:, 2], s=6, c=col, edgecolors="black", linewidths=0.3)
        ax2.text(kp[:, 1].max() - y0 + 4, z1 - kp[:, 2].mean(), level_label(r), color=col, fontsize=6)
    ax2.set_title(f"mid-sagittal of the original volume (x = {x:.0f} mm LPS)", color="white", fontsize=8)
    ax2.axis("off")
    if title:
        fig.suptitle(title, color="white", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, facecolor="black")
    plt.close(fig)
    return path
