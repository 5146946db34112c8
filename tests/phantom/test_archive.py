"""The archive writer: layout, determinism, defects recorded in the truth, privacy of paths.

Fast tests use a stub renderer (a coarse grid with one bone box at the column) so that they
exercise the archive logic, not the renderer; one slow test runs the real renderer end to end.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from tests.conftest import stub_render
from vertfrac_core.errors import InputError
from vertfrac_core.phantom.archive import ArchiveSettings, plan_defects, write_archive
from vertfrac_core.phantom.defects import DefectKind, DefectRates
from vertfrac_core.phantom.population import sample_patient

N_PATIENTS = 8  # enough for every defect kind (7) to be placed at least once


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def _small(patients: int = N_PATIENTS, seed: int = 7, **kw: object) -> ArchiveSettings:
    return ArchiveSettings(patients=patients, seed=seed, profile="small", **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("archive")
    out, truth = base / "arch", base / "arch_truth"
    write_archive(str(out), _small(), renderer=stub_render)
    return out, truth


def _truth(truth: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(truth / f"{name}.parquet")


def test_layout_and_truth_beside(archive: tuple[Path, Path]) -> None:
    out, truth = archive
    assert truth.exists() and not any(p.suffix == ".parquet" for p in out.rglob("*"))
    studies = sorted(p.name for p in out.iterdir())
    assert studies == [f"study_{i:04d}" for i in range(1, N_PATIENTS + 1)]
    series = _truth(truth, "series")
    for row in series.itertuples():
        folder = out / row.study_folder / row.series_folder
        dicoms = [p for p in folder.iterdir() if p.suffix == ".dcm"]
        assert len(list(folder.iterdir())) == row.n_files, row
        assert len(dicoms) >= 1
    # each study has at most one best series; every role and transfer syntax shows up
    best = series[series.is_best].groupby("study_folder").size()
    assert (best == 1).all()
    assert set(series.role) >= {"best", "localizer", "no_spine"}
    assert set(series.transfer_syntax) == {"explicit_le", "rle_lossless", "j2k_lossless"}


def test_no_patient_identity_in_paths(archive: tuple[Path, Path]) -> None:
    out, truth = archive
    patients = _truth(truth, "patients")
    names = {sample_patient(int(s)).patient_name for s in patients.patient_seed}
    paths = [str(p.relative_to(out)) for p in out.rglob("*")]
    for token in [*patients.patient_id, *names, *(n.split("^")[0] for n in names)]:
        assert not any(token.lower() in p.lower() for p in paths), token


def test_headers_match_truth(archive: tuple[Path, Path]) -> None:
    out, truth = archive
    series = _truth(truth, "series")
    patients = _truth(truth, "patients").set_index("study_folder")
    for row in series.itertuples():
        first = sorted((out / row.study_folder / row.series_folder).glob("IM0001.dcm"))[0]
        ds = pydicom.dcmread(first)
        assert ds.PatientID == patients.loc[row.study_folder, "patient_id"]
        assert ds.SeriesInstanceUID == row.series_uid and ds.Modality == row.modality
        assert "\\".join(ds.ImageType) == row.image_type
        assert ds.file_meta.TransferSyntaxUID.name.lower().startswith(
            {"explicit_le": "explicit", "rle_lossless": "rle", "j2k_lossless": "jpeg 2000"}[row.transfer_syntax]
        )


def test_every_defect_recorded_and_present(archive: tuple[Path, Path]) -> None:
    out, truth = archive
    defects = _truth(truth, "defects")
    assert set(defects.kind) == {k.value for k in DefectKind}
    for d in defects.itertuples():
        files = [out / f for f in d.files]
        kind = DefectKind(d.kind)
        if kind == DefectKind.MISSING_SLICE:
            assert files and not any(f.exists() for f in files)
        elif kind == DefectKind.ZERO_BYTE_FILE:
            assert all(f.stat().st_size == 0 for f in files)
        elif kind == DefectKind.TRUNCATED_FILE:
            for f in files:
                with pytest.raises(Exception):  # noqa: B017 -- any read failure is the point
                    pydicom.dcmread(f).pixel_array  # noqa: B018
        elif kind == DefectKind.DUPLICATE_SLICES:
            for f in files:
                twin = [p for p in f.parent.glob("*.dcm") if p != f and p.read_bytes() == f.read_bytes()]
                assert len(twin) == 1
        elif kind == DefectKind.NON_DICOM_FILE:
            assert all(f.exists() and f.read_bytes()[128:132] != b"DICM" for f in files)
    # nothing unexpected: every file that is not a readable DICOM is listed as a defect
    listed = {f for fs in defects.files for f in fs}
    for p in out.rglob("*"):
        if p.is_file():
            try:
                pydicom.dcmread(p, stop_before_pixels=True)
                ok = p.stat().st_size > 0 and p.suffix == ".dcm"
            except Exception:
                ok = False
            if not ok:
                assert str(p.relative_to(out)) in listed, p


def test_no_spine_study_has_no_best(archive: tuple[Path, Path]) -> None:
    _, truth = archive
    defects = _truth(truth, "defects")
    patients = _truth(truth, "patients").set_index("study_folder")
    for folder in defects[defects.kind == "no_spine_study"].study_folder:
        assert not patients.loc[folder, "has_usable_series"]
        assert patients.loc[folder, "levels_in_fov"].size == 0


@pytest.mark.slow
def test_same_seed_same_archive_other_seed_differs(archive: tuple[Path, Path], tmp_path: Path) -> None:
    out, truth = archive
    write_archive(str(tmp_path / "again"), _small(), renderer=stub_render)
    assert _hashes(tmp_path / "again") == _hashes(out)
    assert _hashes(tmp_path / "again_truth") == _hashes(truth)
    write_archive(str(tmp_path / "other"), _small(patients=1, seed=8, ensure_each_defect=False),
                  renderer=stub_render)
    other = _hashes(tmp_path / "other")
    assert not set(other.values()) & set(_hashes(out).values())


def test_defect_plan_rates_and_guarantee() -> None:
    many = plan_defects(_small(patients=400))
    rate = sum(DefectKind.MISSING_SLICE in d for d in many) / 400
    assert 0.01 < rate < 0.1
    few = plan_defects(_small(patients=7))
    assert {k for d in few for k in d} == set(DefectKind)
    none = plan_defects(_small(patients=20, defects=DefectRates(*([0.0] * 7)), ensure_each_defect=False))
    assert not any(none)


def test_refuses_truth_inside_and_non_empty(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="beside the archive"):
        write_archive(str(tmp_path / "a"), _small(1), truth_url=str(tmp_path / "a" / "truth"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        write_archive(str(tmp_path / "b"), _small(1), renderer=stub_render)


@pytest.mark.slow
def test_real_renderer_truth_matches_pixels(tmp_path: Path) -> None:
    """End to end with render_ct: the L1 centre from the truth lands on bone in the best series."""
    out = tmp_path / "real"
    write_archive(str(out), _small(patients=1, seed=3, ensure_each_defect=False,
                                   defects=DefectRates(*([0.0] * 7))))
    series = _truth(tmp_path / "real_truth", "series")
    best = series[series.is_best].iloc[0]
    dss = sorted((pydicom.dcmread(p) for p in (out / best.study_folder / best.series_folder).glob("*.dcm")),
                 key=lambda d: int(d.InstanceNumber))
    iop = np.array([float(v) for v in dss[0].ImageOrientationPatient])
    row_sp, col_sp = (float(v) for v in dss[0].PixelSpacing)
    ipp = np.array([[float(v) for v in d.ImagePositionPatient] for d in dss])
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = iop[:3] * col_sp, iop[3:] * row_sp, ipp[1] - ipp[0], ipp[0]
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    vert = _truth(tmp_path / "real_truth", "vertebrae")
    l1 = vert[(vert.level == "L1") & vert.in_best_fov]
    if l1.empty:
        pytest.skip("L1 outside this field of view")
    centre = l1[["center_x", "center_y", "center_z"]].to_numpy()[0]
    i, j, k = np.rint(np.linalg.solve(aff[:3, :3], centre - aff[:3, 3])).astype(int)
    patch = hu[k, j - 2:j + 3, i - 2:i + 3]
    assert abs(float(np.median(patch)) - float(l1.trabecular_hu.iloc[0])) < 60.0
