"""Group file headers into series, robust to the ways archives break UIDs.

* Empty Study/Series Instance UIDs fall back to other identifying attributes plus the folder
  (so the 20 files of ``example_ct_dicom``, whose UIDs are all empty, form one series).
* Files sharing a Series Instance UID but differing in geometry (orientation, pixel spacing,
  matrix, slice thickness, kernel) or in being a localizer are split into separate series.
* An enhanced multi-frame file is a series of its own, one slice per frame.

Keys are keyed hashes (see ``keys.py``): raw identifiers never leave this module.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vertfrac_core.dicom.geometry import (
    GeometryPolicy,
    StackGeometry,
    analyze_stack,
    orientation_problem,
)
from vertfrac_core.dicom.header import FileHeader
from vertfrac_core.dicom.keys import content_hash, keyed_hash
from vertfrac_core.dicom.zipio import split_location

LOCALIZER_TYPES = {"LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM"}


@dataclass(frozen=True)
class SliceRef:
    """One 2D image of a series: a file (or zip member) and a frame index in it."""

    header: FileHeader
    frame: int
    position: tuple[float, float, float]
    slope: float
    intercept: float


@dataclass(frozen=True)
class Series:
    """A group of slices that should form one volume (before selection decides).

    ``slices`` keep input order; ``geometry`` (when the orientation is valid) gives the order
    along the stack. ``first`` is a representative header for series-level attributes.
    """

    series_key: str
    study_key: str
    patient_key: str | None
    content_hash: str
    source: str
    slices: tuple[SliceRef, ...]
    geometry: StackGeometry | None
    geometry_problem: str | None

    @property
    def first(self) -> FileHeader:
        return self.slices[0].header

    @property
    def n_files(self) -> int:
        return len({s.header.location for s in self.slices})

    @property
    def n_slices(self) -> int:
        return self.geometry.n_slices if self.geometry is not None else len(self.slices)

    def ordered_slices(self) -> list[SliceRef]:
        """Slices along the stack (duplicates dropped); input order if no geometry."""
        if self.geometry is None:
            return list(self.slices)
        return [self.slices[int(i)] for i in self.geometry.order]


def folder_of(location: str) -> str:
    """The folder holding a file, inside its zip if it is a member."""
    container, member = split_location(location)
    if member is not None:
        return f"{container}!{posixpath.dirname(member)}"
    return posixpath.dirname(container.replace("\\", "/"))


def study_identity(h: FileHeader) -> str:
    """Raw study identity: the UID, else other study attributes, else the folder's parent."""
    if h.study_uid:
        return "uid:" + h.study_uid
    attrs = "|".join((h.patient_id, h.study_date, h.study_time, h.accession, h.study_id))
    if h.patient_id or h.accession:
        return "attrs:" + attrs
    return "folder:" + posixpath.dirname(folder_of(h.location)) + "|" + attrs


def series_identity(h: FileHeader) -> str:
    """Raw series identity: the UID, else series attributes plus the folder (the file set)."""
    if h.series_uid:
        return "uid:" + h.series_uid
    return "attrs:" + "|".join((study_identity(h), folder_of(h.location), h.frame_of_reference,
                                str(h.series_number), h.series_description, h.modality))


def is_localizer(h: FileHeader) -> bool:
    return bool(LOCALIZER_TYPES.intersection(h.image_type))


def geometry_signature(h: FileHeader) -> str:
    """What must be equal for slices to stack: orientation, spacing, matrix, thickness, kernel."""
    o = "" if h.orientation is None else ",".join(f"{x:.3f}" for x in h.orientation)
    s = "" if h.pixel_spacing is None else ",".join(f"{x:.4f}" for x in h.pixel_spacing)
    t = "" if h.slice_thickness is None else f"{h.slice_thickness:.2f}"
    parts = [o.replace("-0.000", "0.000"), s, f"{h.rows}x{h.cols}", t, h.kernel,
             "loc" if is_localizer(h) else ""]
    if h.frames > 1 or h.is_enhanced:
        parts.append("mf:" + h.location)
    return "|".join(parts)


def _slices_of(h: FileHeader) -> list[SliceRef]:
    if h.frame_positions is not None and len(h.frame_positions) == h.frames:
        rescale = h.frame_rescale or tuple((h.slope, h.intercept) for _ in range(h.frames))
        return [SliceRef(h, f, p, *rescale[f]) for f, p in enumerate(h.frame_positions)]
    pos = h.position or (0.0, 0.0, 0.0)
    return [SliceRef(h, f, pos, h.slope, h.intercept) for f in range(h.frames)]


def _common_prefix(locations: list[str]) -> str:
    folders = sorted({folder_of(x) for x in locations})
    if len(folders) == 1:
        return folders[0]
    return posixpath.commonpath([f.replace("!", "/") for f in folders]) or folders[0]


def group_series(
    headers: Iterable[FileHeader],
    *,
    secret: bytes | str,
    policy: GeometryPolicy = GeometryPolicy(),
) -> list[Series]:
    """Group usable image headers (``reason is None``) into series; others are ignored here."""
    groups: dict[tuple[str, str, str], list[FileHeader]] = defaultdict(list)
    for h in headers:
        if h.ok:
            groups[(study_identity(h), series_identity(h), geometry_signature(h))].append(h)
    out: list[Series] = []
    for (study_id, series_id, signature), members in sorted(groups.items()):
        members.sort(key=lambda h: h.location)
        slices = [s for h in members for s in _slices_of(h)]
        first = members[0]
        problem = orientation_problem(first.orientation)
        if problem is None and any(h.position is None for h in members):
            problem = "a slice has no ImagePositionPatient"
        geom = None
        if problem is None:
            geom = analyze_stack(np.array([s.position for s in slices]), first.orientation or (),
                                 policy=policy, slice_thickness_mm=first.slice_thickness)
        out.append(Series(
            series_key=keyed_hash(secret, "series", series_id, signature),
            study_key=keyed_hash(secret, "study", study_id),
            patient_key=keyed_hash(secret, "patient", first.patient_id) if first.patient_id else None,
            content_hash=content_hash([f"{h.location}|{h.size}|{h.etag}" for h in members]),
            source=_common_prefix([h.location for h in members]),
            slices=tuple(slices),
            geometry=geom,
            geometry_problem=problem,
        ))
    return out
