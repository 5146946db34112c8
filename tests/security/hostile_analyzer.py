"""The pipeline tests' stand-in analyser (``fake_analyzer``), made to hang on chosen scans: a scan
whose source contains ``hang_on`` keeps its worker busy (short sleeps) for ``hang_s`` seconds
first, standing in for a model stuck on a pathological volume. Test code only."""

from __future__ import annotations

import time
from dataclasses import dataclass

import fake_analyzer

from vertfrac_core.result import ScanResult
from vertfrac_core.volume import Volume


@dataclass(frozen=True)
class HangingModels:
    inner: fake_analyzer.FakeModels
    hang_on: str
    hang_s: float

    @property
    def version(self) -> str:
        return self.inner.version


def load_models(device: str = "cpu", *, hang_on: str = "", hang_s: float = 60.0) -> HangingModels:
    return HangingModels(fake_analyzer.load_models(device), hang_on, hang_s)


def analyze_volume(volume: Volume, *, source: str, models: HangingModels) -> ScanResult:
    if models.hang_on and models.hang_on in source:
        end = time.monotonic() + models.hang_s
        while time.monotonic() < end:
            time.sleep(0.01)
    return fake_analyzer.analyze_volume(volume, source=source, models=models.inner)
