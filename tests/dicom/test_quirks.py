"""Every file in ../shared/data/dicom-quirks: loads with the right geometry or fails clearly."""

from __future__ import annotations

import numpy as np
import pytest

from tests.dicom.conftest import QUIRKS, need
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import load_dicom
from vertfrac_core.dicom.reasons import FileReason, SeriesReason
from vertfrac_core.errors import InputError, UnsupportedTransferSyntaxError

CS = "cornerstone/CTImage.dcm"
LOSSLESS = ["", "_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1",
            "_LittleEndianImplicitTransferSyntax_1.2.840.10008.1.2",
            "_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2",
            "_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99",
            "_RLELosslessTransferSyntax_1.2.840.10008.1.2.5",
            "_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90",
            "_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80",
            "_JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57",
            "_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70"]
LOSSY = {  # syntax suffix -> largest mean |HU error| tolerated
    "_JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91": 2.0,
    "_JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81": 2.0,
    "_JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51": 10.0,
    "_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50": 30.0,  # 8-bit baseline JPEG of a CT
}
NO_DECODER = {"_JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53": "Process 6 and 8",
              "_JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55": "Process 10 and 12"}


def _load(rel: str):  # noqa: ANN202
    return load_dicom(str(need(QUIRKS / rel)), require_selected=False)


@pytest.fixture(scope="module")
def reference():  # noqa: ANN201
    return _load(CS)


def test_reference_slice_geometry(reference) -> None:  # noqa: ANN001
    assert reference.shape == (1, 512, 512)
    assert np.allclose(reference.affine_lps[:3, 3], (-161.399994, -148.800003, 4.7))
    assert reference.hu.min() <= -1000 and reference.hu.max() > 1000


@pytest.mark.parametrize("suffix", LOSSLESS)
def test_lossless_syntaxes_decode_identically(reference, suffix: str) -> None:  # noqa: ANN001
    vol = _load(CS + suffix + (".dcm" if suffix else ""))
    assert np.array_equal(vol.hu, reference.hu)
    assert np.allclose(vol.affine_lps, reference.affine_lps)


@pytest.mark.parametrize(("suffix", "tol"), LOSSY.items())
def test_lossy_syntaxes_decode_close(reference, suffix: str, tol: float) -> None:  # noqa: ANN001
    vol = _load(CS + suffix + ".dcm")
    err = np.abs(vol.hu.astype(np.int32) - reference.hu).mean()
    assert err < tol
    assert np.allclose(vol.affine_lps, reference.affine_lps)


@pytest.mark.parametrize(("suffix", "name"), NO_DECODER.items())
def test_syntax_without_decoder_fails_naming_it(suffix: str, name: str) -> None:
    path = need(QUIRKS / (CS + suffix + ".dcm"))
    with pytest.raises(UnsupportedTransferSyntaxError, match=name):
        load_dicom(str(path), require_selected=False)
    (decision,) = build_index(str(path), secret=DEMO_SECRET).decisions
    assert decision.reason is SeriesReason.UNSUPPORTED_TRANSFER_SYNTAX and name in decision.detail


@pytest.mark.parametrize("name", ["CTImageEvenAligned.dat", "CTImageOddAligned.dat"])
def test_raw_multipart_blobs_are_not_dicom(name: str) -> None:
    result = build_index(str(need(QUIRKS / "cornerstone" / name)), secret=DEMO_SECRET)
    assert [h.reason for h in result.headers] == [FileReason.NOT_DICOM]
    with pytest.raises(InputError, match="not_dicom"):
        load_dicom(str(QUIRKS / "cornerstone" / name))


def test_localizer_is_never_selected_but_loads_as_coronal() -> None:
    path = need(QUIRKS / "fo-dicom" / "GH342.dcm")
    (decision,) = build_index(str(path), secret=DEMO_SECRET).decisions
    assert decision.reason is SeriesReason.LOCALIZER
    vol = load_dicom(str(path), require_selected=False)
    assert np.allclose(vol.affine_lps[:3, 1] / np.linalg.norm(vol.affine_lps[:3, 1]), (0, 0, -1))


def test_gantry_tilt_slice_orientation() -> None:
    vol = _load("fo-dicom/GH1308.dcm")
    col = vol.affine_lps[:3, 1] / np.linalg.norm(vol.affine_lps[:3, 1])
    assert np.degrees(np.arccos(col[1])) == pytest.approx(5.5, abs=0.05)


def test_rle_fragmented_frames_match_pydicom() -> None:
    from pydicom import dcmread

    path = need(QUIRKS / "fo-dicom" / "D_CLUNIE_CT1_RLE_FRAGS.dcm")
    ds = dcmread(path)
    expected = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    vol = load_dicom(str(path), require_selected=False)
    assert np.array_equal(vol.hu[0], expected)
    assert vol.meta["transfer_syntaxes"] == ["1.2.840.10008.1.2.5"]


def test_big_endian_undefined_length_fails_cleanly() -> None:
    path = need(QUIRKS / "fo-dicom" / "GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm")
    (header,) = build_index(str(path), secret=DEMO_SECRET).headers
    assert header.reason is FileReason.MALFORMED and "cannot parse" in header.message


def test_whole_quirks_folder_indexes_without_crash() -> None:
    result = build_index(str(need(QUIRKS)), secret=DEMO_SECRET)
    assert len(result.headers) == len([p for p in QUIRKS.rglob("*") if p.is_file()])
    assert not any(d.selected for d in result.decisions)  # single slices and a localizer
