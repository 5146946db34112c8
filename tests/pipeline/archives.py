"""Fast synthetic archives for the pipeline tests: the phantom archive writer with a stub renderer.

``stub_render`` (shared, from ``tests/conftest.py``) draws a coarse grid with a 300 HU box
around the spinal column, so studies write in milliseconds while keeping the archive logic (series
mix, PACS defects, ground truth) real.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import stub_render
from vertfrac_core.phantom.archive import ArchiveSettings, ArchiveSummary, write_archive
from vertfrac_core.phantom.series_plan import SeriesMix

#: uncompressed files only: the stub's small images are below JPEG 2000's size limit, and
#: encoding is what makes archives slow to write; decoders are tested in tests/dicom
UNCOMPRESSED = SeriesMix(explicit_le=1.0, rle_lossless=0.0, j2k_lossless=0.0)


def stub_archive(url: str, patients: int, seed: int = 11, *, truth_url: str | None = None,
                 storage_options: dict[str, Any] | None = None, **kw: Any) -> ArchiveSummary:
    kw.setdefault("mix", UNCOMPRESSED)
    settings = ArchiveSettings(patients=patients, seed=seed, profile="small", overwrite=True, **kw)
    return write_archive(url, settings, truth_url=truth_url, storage_options=storage_options,
                         renderer=stub_render)
