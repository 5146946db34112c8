"""NIfTI input (VerSe, TotalSegmentator) into the same ``Volume`` as DICOM.

NIfTI affines map the data index ``(i, j, k)`` of ``img.dataobj[i, j, k]`` to RAS+ millimetres
(x to the patient's Right... increasing Left is -x). vertfrac works in LPS, so the affine is
pre-multiplied by ``diag(-1, -1, 1, 1)``; the array is transposed from ``[i, j, k]`` to the
project's ``[k, j, i]``. No voxel is resampled or flipped: any orientation (PIR, LAS, RAS...)
is carried by the affine, so the NIfTI and the DICOM of one scan give the same LPS points.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vertfrac_core.errors import InputError
from vertfrac_core.volume import Volume

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _open(path: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> Any:
    import nibabel as nib

    path = os.fspath(path)
    try:
        if "://" in path and not path.startswith("file://"):
            import fsspec

            with fsspec.open(path, "rb", **(storage_options or {})) as fh:
                data = fh.read()
            return nib.Nifti1Image.from_bytes(
                __import__("gzip").decompress(data) if data[:2] == b"\x1f\x8b" else data)
        return nib.load(path.removeprefix("file://"))
    except Exception as err:  # noqa: BLE001 - nibabel raises several types
        raise InputError(f"Cannot read NIfTI {path!r}: {err}. Expected a .nii or .nii.gz file.") from err


def nifti_affine_lps(img: Any) -> np.ndarray:
    """The image's voxel (i, j, k) -> LPS mm affine (sform if set, else qform, as nibabel)."""
    return RAS_TO_LPS @ np.asarray(img.affine, dtype=np.float64)


def load_nifti_array(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(array [k, j, i] as stored, affine voxel (i, j, k) -> LPS mm); for label maps.

    The array keeps its on-disk dtype (scaling ignored), which suits integer label maps.
    """
    img = _open(path, storage_options)
    arr = np.asanyarray(img.dataobj)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise InputError(f"{path}: expected a 3D image, got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(2, 1, 0)), nifti_affine_lps(img)


def load_nifti(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> Volume:
    """A CT NIfTI as a HU ``Volume`` (scl_slope/inter applied; int16 when values are integral)."""
    img = _open(path, storage_options)
    data = np.asarray(img.get_fdata(dtype=np.float32))
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D CT, got shape {data.shape}")
    hu = data.transpose(2, 1, 0)
    if np.all(np.isfinite(hu)) and np.array_equal(hu, np.rint(hu)) and hu.min() >= -32768 and hu.max() <= 32767:
        hu = hu.astype(np.int16)
    hu = np.ascontiguousarray(hu)
    codes = "".join(__import__("nibabel").aff2axcodes(img.affine))
    meta = {"source": path, "format": "nifti", "orientation_ras_codes": codes,
            "dtype_on_disk": str(img.get_data_dtype())}
    return Volume(hu=hu, affine_lps=nifti_affine_lps(img), meta=meta)
