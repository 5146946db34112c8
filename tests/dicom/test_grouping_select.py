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
