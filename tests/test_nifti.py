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
