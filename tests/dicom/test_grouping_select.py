"""Grouping robust to broken UIDs, selection reasons and ranking, zips of studies."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.dicom.conftest import EXAMPLE_DICOM, axial_positions, need, write_ct_slices
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import load_dicom, load_series
from vertfrac_core.dicom.reasons import SeriesReason


def _by_reason(folder: Path) -> dict[str, SeriesReason | None]:
    result = build_index(str(folder), secret=DEMO_SECRET)
    return {Path(d.series.source).name: d.reason for d in result.decisions}


def test_shared_uid_with_different_geometry_is_split(tmp_path: Path) -> None:
    uid, study = "1.2.3.4.5", "1.2.3.4"
    write_ct_slices(tmp_path / "a", axial_positions(40), series_uid=uid, study_uid=study)
    write_ct_slices(tmp_path / "a", axial_positions(40), series_uid=uid, study_uid=study,
                    spacing=0.5, prefix="HALF")
    write_ct_slices(tmp_path / "a", [[-8, k, 8] for k in range(40)], orientation=(1, 0, 0, 0, 0, -1),
                    series_uid=uid, study_uid=study, prefix="COR")
    result = build_index(str(tmp_path), secret=DEMO_SECRET)
    assert sorted(s.n_slices for s in result.series) == [40, 40, 40]
    assert len({s.series_key for s in result.series}) == 3
    assert len({s.study_key for s in result.series}) == 1
    reasons = sorted(str(d.reason) for d in result.decisions)
    assert reasons == sorted(["None", SeriesReason.OUTRANKED.value, SeriesReason.NON_AXIAL.value])


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"modality": "MR"}, SeriesReason.NOT_CT),
    ({"image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}, SeriesReason.LOCALIZER),
    ({"image_type": ("DERIVED", "SECONDARY", "MPR")}, SeriesReason.DERIVED),
    ({"thickness": 7.0, "step": 7.0}, SeriesReason.TOO_THICK),
    ({"n": 6}, SeriesReason.TOO_FEW_SLICES),
    ({"n": 12, "step": 2.0}, SeriesReason.SHORT_COVERAGE),
])
def test_rejection_reasons(tmp_path: Path, kwargs: dict, reason: SeriesReason) -> None:
    n, step = kwargs.pop("n", 40), kwargs.pop("step", 1.0)
    write_ct_slices(tmp_path, axial_positions(n, step), **kwargs)
    (decision,) = build_index(str(tmp_path), secret=DEMO_SECRET).decisions
    assert decision.reason is reason, decision.detail


def test_ranking_prefers_thin_then_kernel_then_non_contrast_then_coverage(tmp_path: Path) -> None:
    study = "9.8.7"
    write_ct_slices(tmp_path / "thick3", axial_positions(20, 3.0), thickness=3.0, study_uid=study)
    write_ct_slices(tmp_path / "thin_lung", axial_positions(60, 1.0), kernel="LUNG", study_uid=study)
    write_ct_slices(tmp_path / "thin_contrast", axial_positions(60, 1.0), contrast="IOMERON", study_uid=study)
    write_ct_slices(tmp_path / "thin_short", axial_positions(40, 1.0), study_uid=study)
    write_ct_slices(tmp_path / "thin_best", axial_positions(60, 1.0), study_uid=study)
    result = build_index(str(tmp_path), secret=DEMO_SECRET)
    ranked = sorted((d.rank, Path(d.series.source).name) for d in result.decisions)
    assert [name for _, name in ranked] == ["thin_best", "thin_short", "thin_contrast", "thin_lung", "thick3"]
    assert [d.reason for d in result.decisions if d.series.source.endswith("thin_best")] == [None]
    assert all(d.reason is SeriesReason.OUTRANKED for d in result.decisions if not d.selected)


def test_zip_of_a_study_indexes_and_loads_like_the_folder(tmp_path: Path) -> None:
    folder = need(EXAMPLE_DICOM)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"patient/series/{p.name}")
    result = build_index(str(tmp_path), secret=DEMO_SECRET)
    (series,) = result.series
    assert series.n_slices == 20 and result.decisions[0].selected
    assert series.first.location.startswith("zip://patient/series/")
    from_zip, from_folder = load_series(series), load_dicom(str(folder))
    assert np.array_equal(from_zip.hu, from_folder.hu)
    assert np.allclose(from_zip.affine_lps, from_folder.affine_lps)


def test_keys_are_keyed_hashes_not_raw_identifiers(tmp_path: Path) -> None:
    write_ct_slices(tmp_path, axial_positions(40), study_uid="1.2.840.99.1", series_uid="1.2.840.99.2")
    table = build_index(str(tmp_path), secret=b"s1").table()
    text = str(table.to_pylist())
    assert "1.2.840.99" not in text and "P1" not in text.replace("'P1'", "")
    other = build_index(str(tmp_path), secret=b"s2").table()
    assert table["series_key"][0] != other["series_key"][0]


def test_empty_uids_in_two_folders_stay_two_series(tmp_path: Path) -> None:
    src = need(EXAMPLE_DICOM)
    shutil.copytree(src, tmp_path / "one")
    shutil.copytree(src, tmp_path / "two")
    result = build_index(str(tmp_path), secret=DEMO_SECRET)
    assert len(result.series) == 2 and all(s.n_slices == 20 for s in result.series)


def test_targeted_reconstruction_ranks_after_full_fov(tmp_path: Path) -> None:
    """A thin small-FOV off-centre reconstruction loses to a thicker full-FOV series with its
    own reason; the ranked candidates keep it as the fallback; the threshold is a setting."""
    from vertfrac_core.dicom.index import IndexSettings
    from vertfrac_core.dicom.select import SelectionPolicy

    study = "5.6.7"
    # 16 x 25 mm = 400 mm FOV centred on the isocentre, 3 mm slices
    write_ct_slices(tmp_path / "full3", axial_positions(20, 3.0, xy=(-187.5, -187.5)),
                    spacing=25.0, thickness=3.0, study_uid=study)
    # 16 x 10 mm = 160 mm FOV centred at (-90, -110), 1 mm slices: a liver reconstruction
    write_ct_slices(tmp_path / "liver1", axial_positions(60, 1.0, xy=(-165.0, -185.0)),
                    spacing=10.0, thickness=1.0, study_uid=study)
    result = build_index(str(tmp_path), secret=DEMO_SECRET)
    by_name = {Path(d.series.source).name: d for d in result.decisions}
    assert by_name["full3"].selected and not by_name["full3"].targeted
    assert by_name["liver1"].reason is SeriesReason.TARGETED_RECONSTRUCTION
    assert "160 mm" in by_name["liver1"].detail and "142 mm from the isocentre" in by_name["liver1"].detail
    (study_key,) = result.studies
    assert [Path(s.source).name for s in result.candidates(study_key)] == ["full3", "liver1"]
    row = {r["series_key"]: r for r in result.table().to_pylist()}[by_name["liver1"].series.series_key]
    assert row["fov_diameter_mm"] == pytest.approx(160.0) and row["targeted"]
    assert row["fov_offset_mm"] == pytest.approx(np.hypot(90.0, 110.0), abs=0.01)
    # a lower threshold makes both full-FOV: thickness decides again
    low = IndexSettings(selection=SelectionPolicy(min_full_fov_mm=150.0))
    again = build_index(str(tmp_path), secret=DEMO_SECRET, settings=low)
    assert [Path(d.series.source).name for d in again.decisions if d.selected] == ["liver1"]


def test_reconstruction_diameter_header_wins_over_matrix_extent(tmp_path: Path) -> None:
    """ReconstructionDiameter (0018,1100), when present, is the FOV; a lone targeted series
    is still selected, with a caution in its detail."""
    import pydicom

    files = write_ct_slices(tmp_path, axial_positions(40, 1.0), spacing=25.0)  # 400 mm matrix
    for f in files:
        ds = pydicom.dcmread(f)
        ds.ReconstructionDiameter = 250
        ds.save_as(f)
    (decision,) = build_index(str(tmp_path), secret=DEMO_SECRET).decisions
    assert decision.selected and decision.targeted
    assert "caution: targeted reconstruction (reconstruction field of view 250 mm" in decision.detail
