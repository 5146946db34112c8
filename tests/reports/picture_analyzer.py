"""The pipeline tests' stand-in analyser (``tests/pipeline/fake_analyzer.py``) plus a picture.

``analyze_volume(..., out_dir=...)`` draws a mid-sagittal slice of the volume with each
vertebra's 6 keypoints into ``out_dir/sagittal.png``, as the real analyser draws its picture, so
the pipeline's picture storage and the study report's picture can be tested without trained
models. Test-only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fake_analyzer import FakeModels, load_models  # noqa: F401 - re-exported for AnalyzerSpec
from fake_analyzer import analyze_volume as _analyze

from vertfrac_core.result import ScanResult, ScanStatus
from vertfrac_core.volume import Volume


def analyze_volume(volume: Volume, *, source: str, models: FakeModels, out_dir: Path | None = None) -> ScanResult:
    result = _analyze(volume, source=source, models=models)
    if out_dir is None or result.status != ScanStatus.OK:
        return result
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hu = np.asarray(volume.hu)
    mid = hu[:, :, hu.shape[2] // 2]  # (z, y): a sagittal slice
    fig, ax = plt.subplots(figsize=(3, 5), facecolor="black")
    ax.imshow(mid[::-1], cmap="gray", vmin=-250, vmax=1250, aspect="auto")
    for v in result.vertebrae:
        ijk = volume.lps_to_voxel(np.asarray(v.keypoints_lps))
        ax.scatter(ijk[:, 1], hu.shape[0] - 1 - ijk[:, 2], s=6, c="#2ecc71")
        ax.text(ijk[:, 1].max() + 1, hu.shape[0] - 1 - ijk[:, 2].mean(), v.level, color="#2ecc71", fontsize=6)
    ax.axis("off")
    fig.savefig(Path(out_dir) / "sagittal.png", dpi=80, facecolor="black")
    plt.close(fig)
    return ScanResult.from_dict({**result.to_dict(), "images": {"sagittal": "sagittal.png"}})
