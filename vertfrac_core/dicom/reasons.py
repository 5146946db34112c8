"""Reason codes: why a file could not be indexed, and why a series was not selected.

Both enums are ``str`` enums so their ``.value`` goes straight into the ``reason`` column of the
``series_index`` table; a row with ``reason`` null is the selected series of its study.
"""

from __future__ import annotations

from enum import StrEnum


class FileReason(StrEnum):
    """Why a single file (or zip member) yields no usable image header."""

    EMPTY = "empty_file"  # 0 bytes
    NOT_DICOM = "not_dicom"  # no DICOM preamble and no plausible dataset
    TRUNCATED = "truncated"  # ends before its header or pixel data does
    ELEMENT_TOO_LARGE = "element_too_large"  # declares an element far beyond the file end
    HEADER_TOO_LARGE = "header_too_large"  # header exceeds the configured byte limit
    MALFORMED = "malformed"  # pydicom cannot parse it
    DECOMPRESSION_BOMB = "decompression_bomb"  # zip or deflate expanding past the limits
    BAD_ZIP = "bad_zip"  # a .zip that cannot be opened
    NESTED_ZIP = "nested_zip"  # a zip inside a zip (not followed, on purpose)
    DICOMDIR = "dicomdir"  # a media directory; its images are indexed as files
    NO_IMAGE = "no_image"  # valid DICOM without pixel data (SR, presentation state, ...)
    READ_ERROR = "read_error"  # the storage refused the read


class SeriesReason(StrEnum):
    """Why a series was not selected for its study (checked in this order)."""

    NOT_CT = "not_ct"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    LOCALIZER = "localizer"  # ImageType LOCALIZER/SCOUT/TOPOGRAM or a 1-2 slice projection
    DERIVED = "derived"  # DERIVED/SECONDARY image type, MPR/MIP, secondary capture
    NON_AXIAL = "non_axial"  # slice normal more than the tilt limit away from the body axis
    TOO_THICK = "too_thick"  # slice thickness (or spacing) over the limit
    TOO_FEW_SLICES = "too_few_slices"
    SHORT_COVERAGE = "short_coverage"  # craniocaudal extent too short to hold a vertebra
    INCONSISTENT_GEOMETRY = "inconsistent_geometry"  # mixed geometry, large gaps, bad positions
    TARGETED_RECONSTRUCTION = "targeted_reconstruction"  # small-FOV recon, a full-FOV one ranks higher
    OUTRANKED = "outranked"  # usable, but another series of the study ranks higher


Reason = FileReason | SeriesReason
