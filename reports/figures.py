"""Figures of the population report and the dashboard, as PNG bytes (matplotlib, Agg).

Each function takes numbers from :mod:`reports.stats` and returns a PNG; :func:`data_uri`
inlines it into HTML, so a report is one file with no external resource.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pandas as pd

from reports.stats import BAND_ORDER, HU_LIKELY, HU_UNLIKELY, SEX_LABELS, Funnel
from vertfrac_core.detect.levels import level_label

COLOURS = {"F": "#c0392b", "M": "#2471a3", "all": "#333333"}
GRADE_COLOURS = {0: "#2ecc71", 1: "#f1c40f", 2: "#e67e22", 3: "#e74c3c"}


def _plt():  # noqa: ANN202 - matplotlib.pyplot, imported lazily with the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(draw: Callable[..., None], size: tuple[float, float] = (7.0, 3.6), dpi: int = 100) -> bytes:
    """Run ``draw(fig, ax)`` on a new figure and return it as PNG bytes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    try:
        draw(fig, ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _empty(ax, text: str = "no data yet") -> None:  # noqa: ANN001
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_axis_off()


def funnel_png(f: Funnel) -> bytes:
    stages = f.stages()

    def draw(fig, ax) -> None:  # noqa: ANN001
        labels = [s for s, _ in stages][::-1]
        values = [v for _, v in stages][::-1]
        bars = ax.barh(labels, values, color=["#7f8c8d" if "fail" in s or "skip" in s else "#2e86c1"
                                               for s in labels])
        for b, v in zip(bars, values, strict=True):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v}", va="center", fontsize=8)
        ax.set_xlabel("count")
        ax.set_title("Selection funnel", fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)

    return png(draw, (7.0, 3.2))


def prevalence_png(by_band_sex: pd.DataFrame, by_band: pd.DataFrame, title: str) -> bytes:
    """Prevalence by age band: one line per sex and all, with Wilson 95 % intervals."""

    def draw(fig, ax) -> None:  # noqa: ANN001
        if by_band.empty:
            return _empty(ax)
        bands = [b for b in BAND_ORDER if b in set(by_band["age_band"])]
        x = {b: i for i, b in enumerate(bands)}
        series = [("all", by_band)] + [(s, by_band_sex[by_band_sex["sex"] == s]) for s in ("F", "M")]
        for j, (name, d) in enumerate(series):
            if d.empty:
                continue
            xs = np.array([x[b] for b in d["age_band"]]) + (j - 1) * 0.12
            p = d["prevalence"].to_numpy(float) * 100
            err = np.clip(np.vstack([p - d["ci_low"].to_numpy(float) * 100,
                                     d["ci_high"].to_numpy(float) * 100 - p]), 0, None)
            ax.errorbar(xs, p, yerr=err, fmt="o-" if name == "all" else "s--", capsize=3, ms=4,
                        color=COLOURS[name], lw=1.5 if name == "all" else 1,
                        label=SEX_LABELS.get(name, "all"))
        ax.set_xticks(range(len(bands)), bands)
        ax.set_xlabel("age band (years)")
        ax.set_ylabel("prevalence (%)")
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)

    return png(draw)


def levels_png(levels: pd.DataFrame) -> bytes:
    def draw(fig, ax) -> None:  # noqa: ANN001
        if levels.empty or levels["fractured"].sum() == 0:
            return _empty(ax, "no fractured vertebra")
        bottom = np.zeros(len(levels))
        for t, c in (("wedge", "#e67e22"), ("biconcave", "#8e44ad"), ("crush", "#c0392b")):
            ax.bar(levels["level"], levels[t], bottom=bottom, color=c, label=t)
            bottom += levels[t].to_numpy(float)
        ax.set_ylabel("fractured vertebrae")
        ax.set_title("Levels affected (grade ≥ 1), by deformity type", fontsize=10)
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)

    return png(draw)


def l1_png(study_rows: pd.DataFrame) -> bytes:
    """L1 attenuation against age (jittered within the band, never exact ages) by sex."""
    ok = study_rows[study_rows["status"].eq("ok")].dropna(subset=["l1_hu", "age_band", "sex"])

    def draw(fig, ax) -> None:  # noqa: ANN001
        if ok.empty:
            return _empty(ax)
        x = {b: i for i, b in enumerate(BAND_ORDER)}
        rng = np.random.default_rng(0)
        for j, s in enumerate(("F", "M")):
            d = ok[ok["sex"] == s]
            xs = d["age_band"].map(x).to_numpy(float) + (j - 0.5) * 0.3 + rng.uniform(-0.1, 0.1, len(d))
            ax.scatter(xs, d["l1_hu"].astype(float), s=10, alpha=0.6, color=COLOURS[s], label=SEX_LABELS[s])
        ax.axhline(HU_LIKELY, color="#c0392b", lw=1, ls="--")
        ax.axhline(HU_UNLIKELY, color="#27ae60", lw=1, ls="--")
        ax.text(0.995, HU_LIKELY, "110 HU: ≤ likely osteoporosis", transform=ax.get_yaxis_transform(),
                ha="right", va="bottom", fontsize=7, color="#c0392b")
        ax.text(0.995, HU_UNLIKELY, "160 HU: > unlikely", transform=ax.get_yaxis_transform(),
                ha="right", va="bottom", fontsize=7, color="#27ae60")
        used = [b for b in BAND_ORDER if b in set(ok["age_band"])]
        ax.set_xticks([x[b] for b in used], used)
        ax.set_xlabel("age band (years)")
        ax.set_ylabel("L1 trabecular attenuation (HU)")
        ax.set_title("L1 attenuation by age and sex, against the Pickhardt thresholds", fontsize=10)
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        ax.spines[["top", "right"]].set_visible(False)

    return png(draw)


def runs_png(runs: pd.DataFrame) -> bytes:
    def draw(fig, ax) -> None:  # noqa: ANN001
        if runs.empty:
            return _empty(ax)
        labels = [f"{pd.Timestamp(t):%m-%d}\n{r}" for t, r in zip(runs["started"], runs["run"], strict=True)]
        ax.bar(labels, runs["ok"], color="#2e86c1", label="ok")
        ax.bar(labels, runs["failed"], bottom=runs["ok"], color="#c0392b", label="failed")
        ax.bar(labels, runs["skipped"], bottom=runs["ok"] + runs["failed"], color="#95a5a6", label="skipped")
        ax.set_ylabel("scans")
        ax.set_title("Scans per nightly run", fontsize=10)
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)

    return png(draw, (7.0, 3.0))


def spine_schematic_png(vertebrae: pd.DataFrame) -> bytes:
    """A sagittal sketch from the measured keypoints (LPS: y anterior-posterior, z cranio-caudal),
    for studies whose picture is not stored: each body outlined, coloured by grade, labelled."""
    from vertfrac_core.morphometry import KEYPOINT_NAMES

    def draw(fig, ax) -> None:  # noqa: ANN001
        if vertebrae.empty:
            return _empty(ax, "no vertebra measured")
        for _, v in vertebrae.iterrows():
            pts = {n: (float(v[f"{n}_y"]), float(v[f"{n}_z"])) for n in KEYPOINT_NAMES}
            ring = ["anterior_upper", "middle_upper", "posterior_upper", "posterior_lower",
                    "middle_lower", "anterior_lower", "anterior_upper"]
            ys, zs = zip(*(pts[n] for n in ring), strict=True)
            col = GRADE_COLOURS.get(int(v["grade"]), "#999")
            ax.fill(ys, zs, color=col, alpha=0.35, lw=0)
            ax.plot(ys, zs, color=col, lw=1.2)
            ax.scatter(*zip(*pts.values(), strict=True), s=6, color="#222", zorder=3)
            label = level_label(v) + (f"  G{int(v['grade'])} {v['type']}" if int(v["grade"]) > 0 else "")
            ax.text(max(ys) + 3, float(np.mean(zs)), label, fontsize=6.5, va="center", color="#222")
        ax.set_aspect("equal")
        ax.set_xlabel("anterior ← y (mm, LPS) → posterior")
        ax.set_ylabel("z (mm, LPS, superior up)")
        ax.set_title("Keypoint schematic (no stored image)", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)

    n = max(1, len(vertebrae))
    return png(draw, (3.6, min(9.0, 2.0 + 0.35 * n)), dpi=110)
