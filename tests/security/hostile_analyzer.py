"""The pipeline tests' stand-in analyser (``fake_analyzer``) made hostile, for the safety tests:

* a scan whose source holds a word (a run of letters and digits) whose :func:`digest` is
  ``hang_on`` keeps its worker busy (short sleeps) for ``hang_s`` seconds first, standing in for
  a model stuck on a pathological volume (a digest, so that the flow parameter that chooses the
  scan is no identifier itself);
* with ``out_dir`` it draws a small picture and, as a careless analyser might, writes the scan's
  source (an archive path full of identifiers) into the PNG's metadata.

Test code only."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import fake_analyzer
import numpy as np

from vertfrac_core.result import ScanResult, ScanStatus
from vertfrac_core.volume import Volume


@dataclass(frozen=True)
class HostileModels:
    inner: fake_analyzer.FakeModels
    hang_on: str
    hang_s: float

    @property
    def version(self) -> str:
        return self.inner.version


def digest(word: str) -> str:
    return hashlib.sha256(word.encode()).hexdigest()[:16]


def load_models(device: str = "cpu", *, hang_on: str = "", hang_s: float = 60.0) -> HostileModels:
    return HostileModels(fake_analyzer.load_models(device), hang_on, hang_s)


def draw(volume: Volume, path: Path, source: str) -> None:
    """A mid-sagittal slice as a PNG whose Title and Description name the source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hu = np.asarray(volume.hu)
    fig, ax = plt.subplots(figsize=(2, 3))
    ax.imshow(hu[:, :, hu.shape[2] // 2][::-1], cmap="gray", vmin=-250, vmax=1250, aspect="auto")
    ax.axis("off")
    fig.savefig(path, dpi=40, metadata={"Title": source, "Description": f"analysed {source}"})
    plt.close(fig)


def analyze_volume(volume: Volume, *, source: str, models: HostileModels,
                   out_dir: Path | None = None) -> ScanResult:
    if models.hang_on and models.hang_on in {digest(w) for w in re.findall(r"[^\W_]+", source)}:
        end = time.monotonic() + models.hang_s
        while time.monotonic() < end:
            time.sleep(0.01)
    result = fake_analyzer.analyze_volume(volume, source=source, models=models.inner)
    if out_dir is None or result.status != ScanStatus.OK:
        return result
    draw(volume, Path(out_dir) / "sagittal.png", source)
    return ScanResult.from_dict({**result.to_dict(), "images": {"sagittal": "sagittal.png"}})
