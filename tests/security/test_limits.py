"""Per-scan limits in the worker (``vertfrac_core/limits.py``): the memory cap is checked from
the headers before any pixel is read, an oversized series is skipped with a reason (or replaced
by a smaller candidate), and a hanging scan is stopped by the timeout without taking the worker
thread down. The run-level version (a LocalCluster run that goes on) is in test_leaks.py."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest
from hostile_analyzer import digest

from tests.dicom.conftest import axial_positions, write_ct_slices
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import LoadSettings, load_series
from vertfrac_core.limits import (
    ScanLimits,
    ScanTimeoutError,
    SeriesTooLargeError,
    call_with_timeout,
    volume_bytes,
)
from vertfrac_core.result import ScanStatus
from vertfrac_core.screening import AnalyzerSpec, ScreenSettings, WorkItem, screen_study

FAKE = AnalyzerSpec(analyze="fake_analyzer:analyze_volume", load_models="fake_analyzer:load_models")


def _series(folder: Path, n: int, step: float = 1.0, size: int = 16, skip: int | None = None):  # noqa: ANN202
    positions = axial_positions(n, step)
    if skip is not None:
        del positions[skip]  # one missing slice: load fills it
    write_ct_slices(folder, positions, size=size, thickness=step, marker_lps=(0, 0, 2))
    (series,) = build_index(str(folder), secret=DEMO_SECRET).series
    return series


@pytest.mark.parametrize("skip", [None, 5])
def test_estimate_equals_the_volume_load_allocates(tmp_path: Path, skip: int | None) -> None:
    series = _series(tmp_path / "s", 12, skip=skip)
    volume = load_series(series, settings=LoadSettings(workers=1))
    assert volume_bytes(series) == volume.hu.nbytes == 12 * 16 * 16 * 2


def test_loader_refuses_a_volume_over_its_cap_before_decoding(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    series = _series(tmp_path / "s", 12)
    import vertfrac_core.dicom.load as load

    monkeypatch.setattr(load, "_decode_all", lambda *a, **k: pytest.fail("decoded although too large"))
    with pytest.raises(SeriesTooLargeError, match="over the per-scan cap"):
        load_series(series, settings=LoadSettings(max_volume_bytes=12 * 16 * 16 * 2 - 1))


def test_oversized_series_is_skipped_with_a_reason_before_loading(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    series = _series(tmp_path / "big", 40)
    import vertfrac_core.screening as screening

    monkeypatch.setattr(screening, "load_series", lambda *a, **k: pytest.fail("loaded although too large"))
    settings = ScreenSettings(limits=ScanLimits(max_volume_bytes=20_000, timeout_s=None))
    outcome = screen_study(WorkItem(series.study_key, (series,)), FAKE, settings=settings)
    r = outcome.result
    assert r.status is ScanStatus.SKIPPED and r.error_code == "series_too_large"
    assert "40 slices of 16x16" in r.error and "max_volume_mb" in r.error
    assert outcome.series_key == series.series_key and not outcome.transient


def test_an_oversized_selected_series_gives_way_to_a_smaller_candidate(tmp_path: Path) -> None:
    big, small = _series(tmp_path / "thin", 40, 1.0), _series(tmp_path / "thick", 10, 4.0)
    settings = ScreenSettings(limits=ScanLimits(max_volume_bytes=10 * 16 * 16 * 2, timeout_s=None))
    outcome = screen_study(WorkItem(big.study_key, (big, small)), FAKE, settings=settings)
    assert outcome.analyzed_series_key == small.series_key and outcome.candidates_tried == 2
    assert outcome.series_key == big.series_key  # filed under the selected series, as always
    assert outcome.result.error_code != "series_too_large"


def test_timeout_stops_a_hanging_scan_and_the_worker_thread_goes_on(tmp_path: Path) -> None:
    hang, fine = _series(tmp_path / "hang_here", 8), _series(tmp_path / "fine", 8)
    spec = AnalyzerSpec(analyze="hostile_analyzer:analyze_volume", load_models="hostile_analyzer:load_models",
                        options=(("hang_on", digest("hang")), ("hang_s", 60.0)))
    settings = ScreenSettings(limits=ScanLimits(timeout_s=1.0))
    t0 = time.perf_counter()
    stuck = screen_study(WorkItem(hang.study_key, (hang,)), spec, settings=settings)
    took = time.perf_counter() - t0
    assert stuck.result.status is ScanStatus.FAILED and stuck.result.error_code == "timeout"
    assert "1 s" in stuck.result.error and took < 10, took
    assert stuck.result.failed_stage is None  # it hung in the analyser, after loading
    after = screen_study(WorkItem(fine.study_key, (fine,)), spec, settings=settings)
    assert after.result.error_code != "timeout"  # the same thread screens the next study
    time.sleep(1.2)  # a timer must not fire into the thread after the scan that armed it
    assert threading.active_count() < 50


def test_call_with_timeout_passes_results_and_exceptions_through() -> None:
    assert call_with_timeout(lambda: 42, 5.0) == 42
    with pytest.raises(KeyError):
        call_with_timeout(lambda: {}["x"], 5.0)
    with pytest.raises(ScanTimeoutError, match="0.2 s"):
        call_with_timeout(lambda: [time.sleep(0.01) for _ in range(1000)], 0.2)
    for _ in range(100):  # deadlines that expire while the call returns never leak out later
        with contextlib.suppress(ScanTimeoutError):
            call_with_timeout(lambda: sum(range(10_000)), 0.0005)
    time.sleep(0.05)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        ScanLimits(timeout_s=0)
    with pytest.raises(ValueError, match="max_volume_bytes"):
        ScanLimits(max_volume_bytes=-1)
    assert ScanLimits.from_mb(1, None) == ScanLimits(1 << 20, None)
