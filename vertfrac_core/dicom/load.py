"""Assemble a series into a ``Volume``: HU voxels [slice, row, column] plus voxel -> LPS affine.

Order comes from ``geometry.analyze_stack`` (projection of ImagePositionPatient on the slice
normal). Every irregularity is handled explicitly and recorded in ``Volume.meta``:

* duplicate positions: the repeats are dropped (``duplicates_dropped``);
* missing slices: gaps of up to ``GeometryPolicy.max_gap_slices`` are filled by linear
  interpolation (``gaps_interpolated``), larger gaps raise ``GeometryError``;
* variable spacing: resampled (linear) to the median step (``variable_spacing_resampled``);
* gantry tilt: kept as a sheared affine, no resampling (``gantry_tilt_deg``, see geometry.py);
* feet-first / prone: nothing special, the affine from the direction cosines already says it;
* enhanced multi-frame CT: one slice per frame, per-frame positions and rescale.

Speed and memory: the int16 output is allocated once and each slice is decoded straight into
it (uncompressed files by offset, JPEG 2000 straight from its fragments, see ``pixels.py``).
Slices are decoded by a thread pool; compressed series with many slices use worker processes
instead (the decoders hold the GIL), writing into the same output through a memory-mapped file
in /dev/shm (``workers.py``; pass a ``DecodePool`` to reuse processes across series). Peak
memory stays near one int16 volume plus a few slices per worker (resampling adds a second
volume).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vertfrac_core.dicom import codecs
from vertfrac_core.dicom.geometry import GeometryPolicy, StackGeometry, stack_affine
from vertfrac_core.dicom.grouping import Series, SliceRef
from vertfrac_core.dicom.pixels import NATIVE_LE, decode_into, fast_path_ok
from vertfrac_core.dicom.workers import DecodePool, decode_in_processes
from vertfrac_core.errors import DicomError, GeometryError
from vertfrac_core.limits import check_volume_size
from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSettings:
    """Parallelism of pixel decoding. ``workers`` 0 means one per CPU core.

    ``max_volume_bytes``: refuse (``SeriesTooLargeError``) a series whose decoded int16 volume,
    estimated from its headers, would be larger (None: no cap); a hostile header declaring a
    65,535 x 65,535 matrix fails here, before any allocation."""

    workers: int = 0
    process_min_slices: int = 48  # compressed series at least this long decode in processes
    use_processes: bool = True
    geometry: GeometryPolicy = field(default_factory=GeometryPolicy)
    max_volume_bytes: int | None = 16 << 30


def _n_workers(settings: LoadSettings) -> int:
    return settings.workers or max(1, os.cpu_count() or 1)


def _decode_all(refs: list[SliceRef], shape: tuple[int, int, int], settings: LoadSettings,
                storage_options: dict[str, Any] | None, pool: DecodePool | None
                ) -> tuple[np.ndarray, int, str]:
    """Decode every slice in order into a new (K, rows, cols) int16 array."""
    n = pool.workers if pool is not None else _n_workers(settings)
    jobs = list(enumerate(refs))
    compressed = sum(1 for r in refs if not fast_path_ok(r))
    if settings.use_processes and n > 1 and compressed >= settings.process_min_slices:
        try:
            if pool is not None:
                return decode_in_processes(jobs, shape, storage_options, pool)
            with DecodePool(n) as own:
                return decode_in_processes(jobs, shape, storage_options, own)
        except BrokenProcessPool as err:  # e.g. an interactive __main__ that spawn cannot import
            log.warning("worker processes failed (%s); decoding with threads instead", err)
            if pool is not None:
                pool.close()
    out_arr = np.empty(shape, dtype=np.int16)
    if n == 1 or len(jobs) < 4:
        clipped = sum(decode_into(ref, out_arr[k], storage_options) for k, ref in jobs)
        return out_arr, clipped, "1 thread"
    with ThreadPoolExecutor(n) as threads:
        clipped = sum(threads.map(lambda job: decode_into(job[1], out_arr[job[0]], storage_options),
                               jobs))
    return out_arr, clipped, f"{n} threads"


def resample_uniform(vol: np.ndarray, offsets_mm: np.ndarray, step_mm: float) -> tuple[np.ndarray, int]:
    """Linear resampling along axis 0 onto ``offsets_mm[0] + k * step_mm``.

    Args:
        vol: (K, J, I) int16 slices at increasing ``offsets_mm`` (K,).
    Returns:
        (K', J, I) int16 volume and the number of output slices that were interpolated.
    """
    k_out = int(round((offsets_mm[-1] - offsets_mm[0]) / step_mm)) + 1
    targets = offsets_mm[0] + np.arange(k_out) * step_mm
    out = np.empty((k_out, *vol.shape[1:]), dtype=vol.dtype)
    interpolated = 0
    for k, t in enumerate(targets):
        j = int(np.clip(np.searchsorted(offsets_mm, t, side="right") - 1, 0, len(offsets_mm) - 2))
        w = (t - offsets_mm[j]) / (offsets_mm[j + 1] - offsets_mm[j])
        if abs(w) < 1e-3:
            out[k] = vol[j]
        elif abs(w - 1) < 1e-3:
            out[k] = vol[j + 1]
        else:
            w = float(np.clip(w, 0.0, 1.0))
            out[k] = np.rint((1 - w) * vol[j].astype(np.float32) + w * vol[j + 1])
            interpolated += 1
    return out, interpolated


def _check(series: Series) -> StackGeometry:
    if series.geometry is None:
        raise GeometryError(f"Series {series.series_key[:8]} is not a volume: "
                            f"{series.geometry_problem}. Check ImageOrientation/PositionPatient.")
    if not series.geometry.usable:
        raise GeometryError(f"Series {series.series_key[:8]} cannot be assembled: "
                            f"{'; '.join(series.geometry.problems)}.")
    for ts in sorted({s.header.transfer_syntax for s in series.slices}):
        codecs.require_decoder(ts, f"series {series.series_key[:8]}")
    for h in {id(s.header): s.header for s in series.slices}.values():
        if h.samples_per_pixel != 1 or h.bits_allocated not in (8, 16, 32):
            raise DicomError(f"Series {series.series_key[:8]} has a slice with {h.samples_per_pixel} "
                             f"samples of {h.bits_allocated} bits per pixel; CT slices are "
                             "grayscale (1 sample of 8, 16 or 32 bits)")
    return series.geometry


def load_series(
    series: Series,
    *,
    settings: LoadSettings = LoadSettings(),
    storage_options: dict[str, Any] | None = None,
    pool: DecodePool | None = None,
) -> Volume:
    """Decode and assemble one series (from ``build_index``) into a HU ``Volume``.

    ``pool``: reusable decoding processes (see ``workers.py``) for callers that load many
    series; without it, a long compressed series starts its own processes for the call.

    Raises:
        GeometryError: no valid orientation/positions, slices off one line, gaps too large.
        UnsupportedTransferSyntaxError: a transfer syntax with no installed decoder (named).
        DicomError: a slice cannot be read or decoded.
        SeriesTooLargeError: the decoded volume would exceed ``settings.max_volume_bytes``.
    """
    geom = _check(series)
    check_volume_size(series, settings.max_volume_bytes)
    refs = series.ordered_slices()
    h = refs[0].header
    vol, clipped, how = _decode_all(refs, (len(refs), h.rows, h.cols), settings, storage_options,
                                    pool)
    offsets = geom.offsets_mm
    interpolated = 0
    if geom.needs_resampling:
        vol, interpolated = resample_uniform(vol, offsets, geom.step_mm)
    affine = stack_affine(geom, np.asarray(refs[0].position), h.pixel_spacing or (1.0, 1.0))
    meta = {
        "source": series.source,
        "series_key": series.series_key,
        "study_key": series.study_key,
        "n_slices_read": len(refs),
        "duplicates_dropped": geom.duplicates,
        "gaps_interpolated": [list(g) for g in geom.gaps],
        "variable_spacing_resampled": bool(geom.variable_spacing),
        "slices_interpolated": interpolated,
        "gantry_tilt_deg": round(geom.tilt_deg, 3),
        "affine_sheared": geom.tilt_deg > 0.01,
        "slice_step_mm": geom.step_mm,
        "slice_thickness_mm": h.slice_thickness,
        "transfer_syntaxes": sorted({r.header.transfer_syntax for r in refs}),
        "fast_path": all(r.header.transfer_syntax in NATIVE_LE for r in refs),
        "decoded_with": how,
        "hu_clipped_voxels": clipped,
        "enhanced_multiframe": h.is_enhanced,
        "kernel": h.kernel,
        "manufacturer": h.manufacturer,
    }
    if geom.duplicates or geom.gaps or geom.variable_spacing or geom.tilt_deg > 0.01:
        log.info("series %s: %s", series.series_key[:8],
                 {k: meta[k] for k in ("duplicates_dropped", "gaps_interpolated",
                                       "variable_spacing_resampled", "gantry_tilt_deg")})
    return Volume(hu=vol, affine_lps=affine, meta=meta)


def load_dicom(
    url: str,
    *,
    series_key: str | None = None,
    secret: bytes | str | None = None,
    storage_options: dict[str, Any] | None = None,
    settings: LoadSettings = LoadSettings(),
    require_selected: bool = True,
    pool: DecodePool | None = None,
) -> Volume:
    """Index ``url`` (a DICOM folder, file, zip or s3:// prefix) and load one series.

    Without ``series_key`` the series selected for the (single) study is loaded; with several
    studies, pass the key printed by ``vertfrac index``. ``require_selected=False`` loads the
    only series found even if selection rejected it (e.g. a single test slice).
    """
    from vertfrac_core.dicom.index import build_index
    from vertfrac_core.dicom.keys import DEMO_SECRET
    from vertfrac_core.errors import InputError

    result = build_index(url, secret=secret if secret is not None else DEMO_SECRET,
                         storage_options=storage_options)
    if series_key is not None:
        series = result.find(series_key)
    elif not require_selected and len(result.series) == 1:
        series = result.series[0]
    else:
        chosen = result.selected()
        if len(chosen) != 1:
            reasons = sorted({f"{d.reason.value}: {d.detail}" for d in result.decisions if d.reason})
            bad = sorted({f"{h.reason.value}: {h.message}" for h in result.failed if h.reason})
            raise InputError(
                f"{url} holds {len(chosen)} selectable series in {len(result.series)} found "
                f"(rejections: {reasons[:5] + bad[:3]}); pass series_key to pick one")
        series = chosen[0]
    return load_series(series, settings=settings, storage_options=storage_options, pool=pool)
