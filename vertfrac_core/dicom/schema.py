"""The ``series_index`` table: its one Arrow schema (one row per series or unusable file).

Identifiers are keyed hashes (``keys.py``); no name, patient ID or UID is a column. ``source``
is the folder (or zip container) the series came from, never a file name, because archive file
names often embed SOP Instance UIDs. ``reason`` is null for the selected series of a study,
else a ``FileReason`` or ``SeriesReason`` value.
"""

from __future__ import annotations

import pyarrow as pa

SERIES_INDEX_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("series_key", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("study_key", pa.string()),
    pa.field("patient_key", pa.string()),
    pa.field("modality", pa.string()),
    pa.field("image_type", pa.string()),
    pa.field("orientation", pa.string()),  # AXIAL / CORONAL / SAGITTAL / OBLIQUE
    pa.field("slice_thickness_mm", pa.float32()),
    pa.field("slice_spacing_mm", pa.float32()),
    pa.field("pixel_spacing_mm", pa.float32()),  # in-plane (row spacing)
    pa.field("rows", pa.int32()),
    pa.field("columns", pa.int32()),
    pa.field("fov_diameter_mm", pa.float32()),  # ReconstructionDiameter, else spacing x matrix
    pa.field("fov_offset_mm", pa.float32()),  # in-plane distance of the FOV centre from (0, 0)
    pa.field("targeted", pa.bool_()),  # FOV below SelectionPolicy.min_full_fov_mm; null if rejected
    pa.field("n_files", pa.int32()),
    pa.field("n_slices", pa.int32()),  # after dropping duplicates, before filling gaps
    pa.field("missing_slices", pa.int32()),  # slices absent from small gaps (filled on load)
    pa.field("duplicate_slices", pa.int32()),  # repeated positions (dropped on load)
    pa.field("coverage_mm", pa.float32()),
    pa.field("gantry_tilt_deg", pa.float32()),
    pa.field("kernel", pa.string()),
    pa.field("contrast", pa.bool_()),
    pa.field("manufacturer", pa.string()),
    pa.field("transfer_syntax", pa.string()),
    pa.field("series_description", pa.string()),
    pa.field("age_years", pa.float32()),
    pa.field("sex", pa.string()),
    pa.field("study_date", pa.date32()),
    pa.field("selected", pa.bool_(), nullable=False),
    pa.field("rank", pa.int32()),
    pa.field("reason", pa.string()),
    pa.field("reason_detail", pa.string()),
])
"""Columns of ``series_index``; units are in the names (mm, deg, years)."""
