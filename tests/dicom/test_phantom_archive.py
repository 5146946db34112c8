"""Acceptance on synthetic archives: the truth's best series is selected in every study and
every injected defect is detected with its reason.

The archive comes from :func:`vertfrac_core.phantom.archive.write_archive` (profile 'small',
the fast stub renderer of ``tests/conftest.py``, which keeps each protocol's field of view);
the truth tables beside it say which series is best and which defects were injected where.
Detection means: a file-level reason on the file's ``series_index`` row (truncated, empty, not
DICOM), a series-level count on the series row and the handling recorded by ``load_series``
in ``Volume.meta`` (a missing or unreadable slice is a gap filled by interpolation, a repeated
slice is dropped), or a selection reason (a spine-free small-FOV reconstruction is a
``targeted_reconstruction``). Seed 27 is chosen because it holds the hard case: a spine-free
liver reconstruction thinner than the study's best series (the thickness-first rule picked it).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import stub_render
from vertfrac_core.dicom.index import IndexResult, build_index
from vertfrac_core.dicom.load import LoadSettings, load_series
from vertfrac_core.dicom.reasons import FileReason, SeriesReason
from vertfrac_core.dicom.select import SelectionPolicy, select_series
from vertfrac_core.phantom.archive import ArchiveSettings, write_archive
from vertfrac_core.phantom.defects import DefectKind, DefectRates
from vertfrac_core.volume import Volume

SECRET = b"phantom-acceptance"
LOAD = LoadSettings(workers=2, use_processes=False)
FILE_REASON = {
    DefectKind.TRUNCATED_FILE: FileReason.TRUNCATED,
    DefectKind.ZERO_BYTE_FILE: FileReason.EMPTY,
    DefectKind.NON_DICOM_FILE: FileReason.NOT_DICOM,
}
LOST_SLICE = (DefectKind.TRUNCATED_FILE, DefectKind.ZERO_BYTE_FILE, DefectKind.MISSING_SLICE)


@dataclass(frozen=True)
class Checked:
    """An indexed phantom archive with its truth, keyed by 'study_XXXX/series_YYY' folders."""

    root: Path
    result: IndexResult
    rows: pd.DataFrame  # series_index rows of series, with a 'folder' column
    file_rows: pd.DataFrame  # series_index rows of unusable files, with a 'path' column
    truth_series: pd.DataFrame
    defects: pd.DataFrame
    patients: pd.DataFrame
    volumes: dict[str, Volume]  # loaded selected series by folder

    def row(self, folder: str) -> pd.Series:
        (i,) = self.rows.index[self.rows.folder == folder]
        return self.rows.loc[i]


def _relative(root: Path, location: str) -> str:
    return posixpath.relpath(location, str(root))


def _check_archive(base: Path, settings: ArchiveSettings, renderer: object | None) -> Checked:
    root = base / "archive"
    write_archive(str(root), settings, renderer=renderer)  # type: ignore[arg-type]
    truth = base / "archive_truth"
    result = build_index(str(root), secret=SECRET)
    table = result.table().to_pandas()
    rows = table[table.study_key.notna()].copy()
    rows["folder"] = [_relative(root, s) for s in rows.source]
    file_rows = table[table.study_key.isna()].copy()
    by_key = {h.location: h for h in result.failed}
    assert len(by_key) == len(file_rows)
    file_rows["path"] = [_relative(root, h.location) for h in result.failed]
    volumes = {_relative(root, s.source): load_series(s, settings=LOAD) for s in result.selected()}
    return Checked(root, result, rows, file_rows,
                   pd.read_parquet(truth / "series.parquet"), pd.read_parquet(truth / "defects.parquet"),
                   pd.read_parquet(truth / "patients.parquet"), volumes)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Checked:
    settings = ArchiveSettings(patients=10, seed=27, profile="small")
    return _check_archive(tmp_path_factory.mktemp("phantom_ingest"), settings, stub_render)


def assert_best_selected(a: Checked) -> None:
    """Per study: the truth's best series is selected and not flagged; a study without one
    (no_spine_study) selects at most a series flagged as a targeted reconstruction."""
    truth = a.truth_series.assign(folder=a.truth_series.study_folder + "/" + a.truth_series.series_folder)
    selected = a.rows[a.rows.selected]
    assert selected.study_key.is_unique
    for p in a.patients.itertuples():
        mine = selected[selected.folder.str.startswith(p.study_folder + "/")]
        best = truth[(truth.study_folder == p.study_folder) & truth.is_best]
        if p.has_usable_series:
            assert list(mine.folder) == list(best.folder), p.study_folder
            assert not mine.targeted.iloc[0]
        else:
            assert best.empty
            assert mine.targeted.all() and mine.reason_detail.str.contains("caution: targeted").all()


def assert_defects_detected(a: Checked, *, every_kind: bool = True) -> None:
    """Every injected defect shows up with its reason, where the pipeline records it."""
    if every_kind:
        assert set(a.defects.kind) == {k.value for k in DefectKind}
    reasons = dict(zip(a.file_rows.path, a.file_rows.reason, strict=True))
    lost: dict[str, int] = {}
    for d in a.defects.itertuples():
        kind, folder = DefectKind(d.kind), f"{d.study_folder}/{d.series_folder}"
        if kind in FILE_REASON:
            for f in d.files:
                assert reasons.get(f) == FILE_REASON[kind].value, (kind, f, reasons.get(f))
        if kind in LOST_SLICE:
            lost[folder] = lost.get(folder, 0) + len(d.files)
        elif kind == DefectKind.DUPLICATE_SLICES:
            assert a.row(folder).duplicate_slices == len(d.files)
            assert a.volumes[folder].meta["duplicates_dropped"] == len(d.files)
        elif kind == DefectKind.NO_SPINE_SERIES:
            row = a.row(folder)
            assert row.reason == SeriesReason.TARGETED_RECONSTRUCTION.value, row.reason_detail
            assert row.targeted and row.fov_diameter_mm < SelectionPolicy().min_full_fov_mm
        elif kind == DefectKind.NO_SPINE_STUDY:
            row = a.row(folder)
            assert row.targeted and (pd.isna(row.reason)
                                    or row.reason == SeriesReason.TARGETED_RECONSTRUCTION.value)
    for folder, n in lost.items():  # lost slices become gaps, filled on load
        assert a.row(folder).missing_slices == n, folder
        gaps = a.volumes[folder].meta["gaps_interpolated"]
        assert sum(m for _, m in gaps) == n, (folder, gaps)


def assert_no_false_alarms(a: Checked) -> None:
    """Nothing is flagged that the generator did not inject."""
    listed = {f for fs in a.defects.files for f in fs}
    assert set(a.file_rows.path) <= listed
    touched = {f"{d.study_folder}/{d.series_folder}" for d in a.defects.itertuples()
               if DefectKind(d.kind) in (*LOST_SLICE, DefectKind.DUPLICATE_SLICES)}
    for r in a.rows.itertuples():
        if r.folder not in touched and pd.notna(r.missing_slices):
            assert (r.missing_slices, r.duplicate_slices) == (0, 0), r.folder
    no_spine = {f"{d.study_folder}/{d.series_folder}" for d in a.defects.itertuples()
                if d.kind in (DefectKind.NO_SPINE_SERIES, DefectKind.NO_SPINE_STUDY)}
    assert set(a.rows.folder[a.rows.targeted.fillna(False).astype(bool)]) == no_spine


def assert_volumes_match_truth(a: Checked) -> None:
    """Each loaded selected series has the truth's slice count and matrix (gaps filled,
    duplicates dropped) and its HU range (air -1000, the stub's 300 HU column)."""
    truth = a.truth_series.set_index(a.truth_series.study_folder + "/" + a.truth_series.series_folder)
    for folder, vol in a.volumes.items():
        t = truth.loc[folder]
        assert vol.hu.shape == (t.n_slices, t.rows, t.columns), folder
        assert vol.spacing_mm[0] == pytest.approx(t.pixel_spacing_mm, abs=1e-6)


def test_archive_best_series_selected_everywhere(archive: Checked) -> None:
    assert_best_selected(archive)


def test_archive_every_defect_detected_with_its_reason(archive: Checked) -> None:
    assert_defects_detected(archive)


def test_archive_no_false_alarms(archive: Checked) -> None:
    assert_no_false_alarms(archive)


def test_archive_volumes_match_truth(archive: Checked) -> None:
    assert_volumes_match_truth(archive)


def test_targeted_rule_is_what_rescues_the_thin_liver_reconstruction(archive: Checked) -> None:
    """The hard case is present, and without the targeted rule selection gets it wrong."""
    a = archive
    (study,) = a.defects.study_folder[a.defects.kind == DefectKind.NO_SPINE_SERIES.value]
    truth = a.truth_series[a.truth_series.study_folder == study]
    (liver,) = truth.slice_thickness_mm[truth.role == "no_spine"]
    (best,) = truth.slice_thickness_mm[truth.is_best]
    assert liver < best
    off = select_series(a.result.series, policy=SelectionPolicy(min_full_fov_mm=1.0))
    chosen = {d.series.study_key: _relative(a.root, d.series.source) for d in off.decisions if d.selected}
    assert any(c.startswith(study + "/") and c.endswith(liver_folder)
               for c in chosen.values()
               for liver_folder in truth.series_folder[truth.role == "no_spine"])


def test_ranked_candidates_offer_the_fallbacks(archive: Checked) -> None:
    """Per study, the ranked candidates start with the selected series; a spine-free
    reconstruction stays in the list (last), so the pipeline can fall back to it or past it."""
    a = archive
    for study_key, sel in a.result.studies.items():
        cands = a.result.candidates(study_key)
        assert [s.series_key for s in cands] == list(sel.ranked)
        chosen = [d.series.series_key for d in a.result.decisions
                  if d.selected and d.series.study_key == study_key]
        assert chosen == ([sel.chosen] if sel.chosen else [])
        assert sel.ranked[:1] == ((sel.chosen,) if sel.chosen else ())
        flags = [bool(a.row(_relative(a.root, s.source)).targeted) for s in cands]
        assert flags == sorted(flags)  # full-FOV candidates before targeted ones


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 20, 25])
def test_more_archives(tmp_path: Path, seed: int) -> None:
    """The same acceptance on other seeds (truncated JPEG 2000 and RLE files among them)."""
    settings = ArchiveSettings(patients=10 if seed else 8, seed=seed, profile="small")
    a = _check_archive(tmp_path, settings, stub_render)
    assert_best_selected(a)
    assert_defects_detected(a)
    assert_no_false_alarms(a)
    assert_volumes_match_truth(a)


@pytest.mark.slow
def test_real_renderer_archive(tmp_path: Path) -> None:
    """Two studies rendered by render_ct (256 matrix), every file defect and a spine-free
    liver reconstruction in each: best selected, every defect detected."""
    rates = DefectRates(truncated_file=1.0, missing_slice=1.0, duplicate_slices=1.0,
                        zero_byte_file=1.0, non_dicom_file=1.0, no_spine_series=1.0,
                        no_spine_study=0.0)
    a = _check_archive(tmp_path, ArchiveSettings(patients=2, seed=5, profile="small",
                                                 defects=rates, ensure_each_defect=False), None)
    assert set(a.defects.kind) == {k.value for k in DefectKind} - {DefectKind.NO_SPINE_STUDY.value}
    assert_best_selected(a)
    assert_defects_detected(a, every_kind=False)
    assert_no_false_alarms(a)
    assert_volumes_match_truth(a)
