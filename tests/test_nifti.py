"""NIfTI (VerSe PIR, TotalSegmentator LAS) into the same LPS Volume as DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vertfrac_core.nifti import load_nifti, load_nifti_array

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


def _need(rel: str) -> str:
    p = DATA / rel
    if not p.exists():
        pytest.skip(f"shared test data missing: {p}")
    return str(p)


@pytest.mark.parametrize("rel", ["real/verse/sub-verse005_ct.nii.gz", "real/totalseg/example_ct.nii.gz"])
def test_ct_nifti_maps_voxels_to_lps(rel: str) -> None:
    import nibabel as nib

    path = _need(rel)
    img = nib.load(path)
    vol = load_nifti(path)
    assert vol.shape == img.shape[::-1]
    ijk = np.array([[0, 0, 0], [3, 5, 7]], float)
    ras = nib.affines.apply_affine(img.affine, ijk)
    assert np.allclose(vol.voxel_to_lps(ijk), ras * [-1, -1, 1])
    data = np.asarray(img.dataobj)
    assert vol.hu[7, 5, 3] == pytest.approx(float(data[3, 5, 7]) * (img.dataobj.slope or 1) + (img.dataobj.inter or 0))


def test_verse_mask_on_the_ct_grid_covers_bone() -> None:
    vol = load_nifti(_need("real/verse/sub-verse005_ct.nii.gz"))
    mask, affine = load_nifti_array(_need("real/verse/sub-verse005_seg-vert_msk.nii.gz"))
    assert mask.shape == vol.shape and np.allclose(affine, vol.affine_lps)
    assert np.median(vol.hu[mask > 0]) > 150


def test_missing_file_is_a_clear_input_error(tmp_path: Path) -> None:
    from vertfrac_core.errors import InputError

    with pytest.raises(InputError, match="Cannot read NIfTI"):
        load_nifti(str(tmp_path / "nope.nii.gz"))


def test_a_path_object_reads_like_its_string() -> None:
    path = Path(_need("real/verse/sub-verse006_ct.nii.gz"))
    assert load_nifti(path).shape == load_nifti(str(path)).shape
    mask, _ = load_nifti_array(Path(_need("real/verse/sub-verse006_seg-vert_msk.nii.gz")))
    assert mask.max() > 0


@pytest.mark.parametrize("perm,flips", [((2, 1, 0), (1, 2)), ((1, 0, 2), (0,))])
def test_the_same_ct_stored_in_another_axis_order_gives_the_same_result(tmp_path: Path, perm, flips) -> None:  # noqa: ANN001
    """VerSe 005 (PIR) rewritten with its array axes permuted and flipped (RSA, SPR), the affine
    following, is the same patient: the same vertebrae, levels, heights and attenuation come out
    (all 12 such orders were checked by hand in session 12; two run here)."""
    import nibabel as nib

    from vertfrac_core.analyze import analyze_path, load_models

    path = _need("real/verse/sub-verse005_ct.nii.gz")
    img = nib.load(path)
    data, aff = np.asarray(img.dataobj), img.affine.copy()
    data = np.transpose(data, perm)
    aff[:, :3] = img.affine[:, list(perm)]
    for ax in flips:
        aff[:, 3] += aff[:, ax] * (data.shape[ax] - 1)
        aff[:, ax] *= -1
        data = np.flip(data, ax)
    moved = tmp_path / "moved.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), aff, img.header), str(moved))
    assert nib.aff2axcodes(nib.load(str(moved)).affine) != nib.aff2axcodes(img.affine)

    models = load_models("cpu")
    a = analyze_path(path, tmp_path / "a", models=models)
    b = analyze_path(str(moved), tmp_path / "b", models=models)
    assert a.status == b.status and len(a.vertebrae) == len(b.vertebrae) >= 3
    for va, vb in zip(a.vertebrae, b.vertebrae, strict=True):
        assert va.level == vb.level and va.grade == vb.grade
        assert np.allclose([va.ha_mm, va.hm_mm, va.hp_mm], [vb.ha_mm, vb.hm_mm, vb.hp_mm], atol=0.1)
        assert np.allclose(va.keypoints_lps, vb.keypoints_lps, atol=0.1)
        assert va.trabecular_hu == pytest.approx(vb.trabecular_hu, abs=1.0)
