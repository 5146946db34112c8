"""Screen one study: load its selected series, run the analyser, fall back on no spine.

Everything here runs inside a worker (a Dask worker in the pipeline, or a plain loop) and is
independent of any orchestrator. The analyser is injected as an :class:`AnalyzerSpec` -- dotted
paths, so the spec pickles and travels to remote workers -- and resolved once per process by
:func:`loaded`: models load once per worker, not once per scan.

The analyser contract (``vertfrac_core.analyze``): ``load_models(device=..., **options) ->
Models`` where ``Models.version`` is the model version string, and ``analyze(volume, *, source,
models) -> ScanResult``. A scan that fails becomes a ``ScanResult`` with status failed, the
stage and a reason; it never raises. A storage outage is retried with backoff and, if it
persists, reported as ``transient`` so that the run leaves the study for the next run.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vertfrac_core.batches import TableStore
from vertfrac_core.dicom.grouping import Series
from vertfrac_core.dicom.load import LoadSettings, load_series
from vertfrac_core.errors import (
    DicomError,
    GeometryError,
    InputError,
    NoSpineError,
    UnsupportedTransferSyntaxError,
)
from vertfrac_core.limits import (
    ScanLimits,
    ScanTimeoutError,
    SeriesTooLargeError,
    call_with_timeout,
    check_volume_size,
)
from vertfrac_core.redact import strip_png_text
from vertfrac_core.result import ScanResult, ScanStatus, Stage
from vertfrac_core.safepath import clean_component, key_component, safe_join
from vertfrac_core.storage import is_transient, retry_transient
from vertfrac_core.tables import ScanOutcome

log = logging.getLogger(__name__)

DEFAULT_ANALYZE = "vertfrac_core.analyze:analyze_volume"
DEFAULT_LOAD_MODELS = "vertfrac_core.analyze:load_models"
NO_MODEL = "none"  # model_version of rows written while no analyser is installed
TOO_LARGE = "series_too_large"  # error code: skipped, over ScanLimits.max_volume_bytes
TIMEOUT = "timeout"  # error code: failed, stopped after ScanLimits.timeout_s


@dataclass(frozen=True)
class AnalyzerSpec:
    """Which analyser to run, as importable ``module:attribute`` paths (picklable, hashable).

    ``options`` are extra keyword arguments of ``load_models`` as (name, value) pairs;
    ``version`` overrides the version the models report.
    """

    analyze: str = DEFAULT_ANALYZE
    load_models: str = DEFAULT_LOAD_MODELS
    device: str = "cpu"
    options: tuple[tuple[str, Any], ...] = ()
    version: str | None = None

    def __post_init__(self) -> None:
        for path in (self.analyze, self.load_models):
            if path.count(":") != 1:
                raise ValueError(f"analyser path {path!r} must read 'package.module:function'")


@dataclass(frozen=True)
class LoadedAnalyzer:
    analyze: Callable[..., ScanResult]
    models: Any
    version: str
    draws_picture: bool = False  # analyze() takes out_dir and writes sagittal.png there


def _takes_out_dir(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "out_dir" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def import_object(path: str) -> Any:
    """The object named by ``module:attribute``."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def unavailable_reason(spec: AnalyzerSpec) -> str | None:
    """None when both paths of ``spec`` import, else why not (cheap: loads no model)."""
    for path in (spec.analyze, spec.load_models):
        try:
            import_object(path)
        except (ImportError, AttributeError) as err:
            return f"{path} cannot be imported ({type(err).__name__}: {err})"
    return None


_LOADED: dict[AnalyzerSpec, LoadedAnalyzer] = {}  # per process: one model load per worker
_LOCK = threading.Lock()


def loaded(spec: AnalyzerSpec) -> LoadedAnalyzer:
    """The analyser of ``spec`` with its models, loaded on the first call in this process."""
    with _LOCK:
        if spec not in _LOADED:
            t0 = time.perf_counter()
            models = import_object(spec.load_models)(device=spec.device, **dict(spec.options))
            version = spec.version or str(getattr(models, "version", None) or spec.load_models)
            fn = import_object(spec.analyze)
            _LOADED[spec] = LoadedAnalyzer(fn, models, version, _takes_out_dir(fn))
            log.info("models %s loaded in %.1f s (pid %d)", version, time.perf_counter() - t0,
                     os.getpid())
        return _LOADED[spec]


def model_version(spec: AnalyzerSpec) -> str:
    return loaded(spec).version


@dataclass(frozen=True)
class WorkItem:
    """One study to screen: its acceptable series, best first (``candidates[0]`` is selected)."""

    study_key: str
    candidates: tuple[Series, ...]

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError(f"study {self.study_key[:8]} has no candidate series")

    @property
    def selected(self) -> Series:
        return self.candidates[0]


@dataclass(frozen=True)
class ScreenSettings:
    """How a worker screens one study."""

    load: LoadSettings = field(default_factory=lambda: LoadSettings(workers=1, use_processes=False))
    max_fallbacks: int = 2  # further candidates tried when a series shows no spine
    storage_attempts: int = 4
    storage_base_delay_s: float = 0.5
    images: TableStore | None = None  # where pictures are stored (the tables' store); None: none
    limits: ScanLimits = field(default_factory=ScanLimits)  # memory cap and timeout per scan


def image_path(series: Series, model_version: str) -> str:
    """Where the picture of ``series`` analysed by ``model_version`` goes, relative to the tables.

    Keys must be the pipeline's hex keys and the version becomes one clean file-name component
    (``safepath.py``): nothing read from data chooses a folder."""
    series_key = key_component(series.series_key, "series key")
    content = key_component(series.content_hash[:16], "content hash")
    return f"images/{series_key}/{content}-{clean_component(model_version)}.png"


def _store_picture(result: ScanResult, tmp: Path, series: Series, version: str,
                   settings: ScreenSettings) -> ScanResult:
    """Upload the picture the analyser drew into ``tmp`` (PNG text and metadata chunks
    stripped: ``redact.strip_png_text``); the result then points at it.

    A failed upload costs the picture, not the result (logged, ``images`` left empty)."""
    drawn = tmp / result.images.get("sagittal", "sagittal.png")
    if settings.images is None or result.status != ScanStatus.OK or not drawn.is_file():
        return replace(result, images={})
    try:
        rel = image_path(series, version)
        fs, root = settings.images.open()
        dest = safe_join(root, *rel.split("/"))
        retry_transient(lambda: (fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True),
                                 fs.pipe_file(dest, strip_png_text(drawn.read_bytes()))),
                        attempts=settings.storage_attempts, base_delay_s=settings.storage_base_delay_s,
                        what=f"storing the picture of series {series.series_key[:8]}")
    except Exception as err:  # noqa: BLE001 - the result stands without its picture
        log.warning("picture of series %s not stored: %s", series.series_key[:8], err)
        return replace(result, images={})
    return replace(result, images={"sagittal": rel})


def _load_error_code(err: BaseException) -> str:
    for cls, code in ((UnsupportedTransferSyntaxError, "unsupported_transfer_syntax"),
                      (GeometryError, "geometry"), (DicomError, "dicom_error"),
                      (InputError, "input_error"), (FileNotFoundError, "missing_file"),
                      (MemoryError, "out_of_memory")):
        if isinstance(err, cls):
            return code
    return "load_error"


def _is_no_spine(r: ScanResult) -> bool:
    return r.status == ScanStatus.FAILED and r.failed_stage == Stage.LOCALIZE and r.error_code == "no_spine"


def _try_next(r: ScanResult) -> bool:
    """Whether another candidate series of the study may do better: no spine, or too large."""
    return _is_no_spine(r) or (r.status == ScanStatus.SKIPPED and r.error_code == TOO_LARGE)


def analyze_series(series: Series, analyzer: LoadedAnalyzer, *, settings: ScreenSettings,
                   storage_options: dict[str, Any] | None) -> tuple[ScanResult, bool]:
    """(result, transient) for one series; never raises for a bad scan.

    Within ``settings.limits``: a series whose decoded volume would exceed the memory cap is
    skipped before loading (error code ``series_too_large``); loading plus analysis longer than
    the timeout is stopped and recorded as failed with error code ``timeout``."""
    try:
        check_volume_size(series, settings.limits.max_volume_bytes)
    except SeriesTooLargeError as err:
        log.warning("series %s skipped: %s", series.series_key[:8], err)
        return ScanResult(source=series.source, status=ScanStatus.SKIPPED,
                          model_version=analyzer.version, error_code=TOO_LARGE,
                          error=str(err)), False
    t0 = time.perf_counter()
    stage: list[Stage | None] = [Stage.LOAD]  # what was running if the timeout strikes
    try:
        return call_with_timeout(
            lambda: _load_and_analyze(series, analyzer, settings, storage_options, stage),
            settings.limits.timeout_s, what=f"series {series.series_key[:8]}")
    except ScanTimeoutError as err:
        log.warning("series %s: %s", series.series_key[:8], err)
        return ScanResult(source=series.source, status=ScanStatus.FAILED,
                          model_version=analyzer.version, failed_stage=stage[0],
                          error_code=TIMEOUT, error=str(err),
                          timings_s={"total": round(time.perf_counter() - t0, 4)}), False


def _load_and_analyze(series: Series, analyzer: LoadedAnalyzer, settings: ScreenSettings,
                      storage_options: dict[str, Any] | None,
                      stage: list[Stage | None]) -> tuple[ScanResult, bool]:
    t0 = time.perf_counter()
    try:
        volume = retry_transient(
            lambda: load_series(series, settings=settings.load, storage_options=storage_options),
            attempts=settings.storage_attempts, base_delay_s=settings.storage_base_delay_s,
            what=f"loading series {series.series_key[:8]}")
    except Exception as err:  # noqa: BLE001 - every failure becomes a row
        transient = is_transient(err)
        code = "storage_unavailable" if transient else _load_error_code(err)
        return ScanResult.failure(series.source, analyzer.version, Stage.LOAD, code,
                                  f"{type(err).__name__}: {err}"), transient
    t_load = time.perf_counter() - t0
    stage[0] = None  # the analyser's own stages are not known from outside
    draw = settings.images is not None and analyzer.draws_picture
    tmp = tempfile.TemporaryDirectory(prefix="vertfrac-picture-") if draw else None
    try:
        extra = {"out_dir": Path(tmp.name)} if tmp is not None else {}
        result = analyzer.analyze(volume, source=series.source, models=analyzer.models, **extra)
        if tmp is not None:
            result = _store_picture(result, Path(tmp.name), series, analyzer.version, settings)
    except NoSpineError as err:
        result = ScanResult.failure(series.source, analyzer.version, Stage.LOCALIZE, "no_spine", str(err))
    except Exception as err:  # noqa: BLE001 - an analyser bug must not stop the run
        log.exception("analyser raised on series %s", series.series_key[:8])
        result = ScanResult(source=series.source, status=ScanStatus.FAILED,
                            model_version=analyzer.version, error_code="analyzer_error",
                            error=f"{type(err).__name__}: {err}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    timings = {"load": round(t_load, 4), **result.timings_s,
               "total": round(time.perf_counter() - t0, 4)}
    return replace(result, timings_s=timings), False


def screen_study(item: WorkItem, spec: AnalyzerSpec, *, settings: ScreenSettings = ScreenSettings(),
                 storage_options: dict[str, Any] | None = None) -> ScanOutcome:
    """Screen one study; the outcome is filed under its selected series' keys."""
    analyzer = loaded(spec)
    tried = 0
    for series in item.candidates[: 1 + settings.max_fallbacks]:
        tried += 1
        result, transient = analyze_series(series, analyzer, settings=settings,
                                           storage_options=storage_options)
        if transient or not _try_next(result):
            break
        log.info("study %s: series %s %s; trying the next candidate", item.study_key[:8],
                 series.series_key[:8], "is too large" if result.error_code == TOO_LARGE
                 else "shows no spine")
    sel = item.selected
    return ScanOutcome(result=result, series_key=sel.series_key, content_hash=sel.content_hash,
                       model_version=analyzer.version, study_key=item.study_key,
                       patient_key=sel.patient_key, analyzed_series_key=series.series_key,
                       candidates_tried=tried, worker=f"{socket.gethostname()}:{os.getpid()}",
                       transient=transient)


def skipped_outcome(item: WorkItem, reason_code: str, message: str) -> ScanOutcome:
    """An outcome for a study that was not analysed (e.g. no analyser installed)."""
    sel = item.selected
    result = ScanResult(source=sel.source, status=ScanStatus.SKIPPED, model_version=NO_MODEL,
                        error_code=reason_code, error=message)
    return ScanOutcome(result=result, series_key=sel.series_key, content_hash=sel.content_hash,
                       model_version=NO_MODEL, study_key=item.study_key,
                       patient_key=sel.patient_key, candidates_tried=0)
