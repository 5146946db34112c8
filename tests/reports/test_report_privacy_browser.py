"""Acceptance on a real phantom archive screened by the pipeline's functions (slow):

* no report carries a raw patient identifier: every output file of ``vertfrac report`` (HTML,
  PDF text streams, pictures' metadata) is scanned for the phantoms' names, patient IDs, birth
  dates and the study, series and SOP instance UIDs read from the archive's own headers;
* the population report, the dashboard and study reports open in headless Chromium with no
  console error, every figure decoded (``naturalWidth > 0``), and full-page screenshots saved
  (``VERTFRAC_SCREENSHOTS=docs`` also copies them to ``docs/`` for the README).
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
import zlib
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from browser import Browser
from typer.testing import CliRunner

from reports.build import write_reports
from vertfrac_core.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report_dir(screened_archive, tmp_path_factory):  # noqa: ANN001, ANN201
    out = tmp_path_factory.mktemp("reports")
    result = CliRunner().invoke(app, ["report", str(screened_archive.dest), "--out", str(out), "--studies", "all"])
    assert result.exit_code == 0, result.output
    assert "population report" in result.output
    return out


def identifiers(archive: Path, truth: Path) -> set[str]:
    """Names, IDs, birth dates and UIDs of the archive, from its truth and its DICOM headers."""
    found: set[str] = set()
    patients = pd.read_parquet(truth / "patients.parquet")
    found |= set(patients["patient_id"]) | set(patients["study_uid"])
    for f in sorted(p for p in archive.rglob("*") if p.is_file()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the archive's injected defects warn on purpose
                ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001, S112 - junk files injected on purpose
            continue
        for tag in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                    "SOPInstanceUID", "PatientBirthDate", "AccessionNumber", "FrameOfReferenceUID"):
            value = str(ds.get(tag, "") or "")
            if len(value) >= 6:
                found.add(value)
                if tag == "PatientName":
                    found |= {p for p in re.split(r"[\^ ]", value) if len(p) >= 4}
                    found.add(value.replace("^", " "))
                if tag == "PatientBirthDate" and len(value) == 8:
                    found |= {f"{value[:4]}-{value[4:6]}-{value[6:]}", f"{value[6:]}.{value[4:6]}.{value[:4]}"}
    return found


_PDF_STRING = re.compile(rb"\((?:\\.|[^\\)])*\)")
_PDF_TEXT = re.compile(rb"\[(.*?)\]\s*TJ|(\((?:\\.|[^\\)])*\))\s*Tj", re.S)


def _pdf_text(stream: bytes) -> bytes:
    """The shown text of a PDF content stream: strings of TJ arrays (kerned glyph by glyph, as
    matplotlib writes them) joined, and Tj strings."""
    out = []
    for m in _PDF_TEXT.finditer(stream):
        chunk = m.group(1) if m.group(1) is not None else m.group(2)
        out.append(b"".join(re.sub(rb"\\(.)", rb"\1", t[1:-1]) for t in _PDF_STRING.findall(chunk)))
    return b"\n".join(out)


def readable_text(path: Path) -> str:
    """The file's bytes as text, plus, for a PDF, the text its (inflated) content streams show."""
    data = path.read_bytes()
    parts = [data]
    if data.startswith(b"%PDF"):
        for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
            try:
                stream = zlib.decompress(m.group(1))
            except zlib.error:
                stream = m.group(1)
            parts += [stream, _pdf_text(stream)]
    return b"\n".join(parts).decode("latin-1")


def test_pdf_text_extraction_finds_a_planted_identifier(tmp_path: Path) -> None:
    """Negative control: the scan would see a name, an ID and a UID written into a PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path = tmp_path / "planted.pdf"
    with PdfPages(path) as pdf:
        fig = plt.figure()
        fig.text(0.1, 0.5, "Novak^Anna PID0123ABCD (1.2.840.113619.2.55.3)")
        pdf.savefig(fig)
        plt.close(fig)
    text = readable_text(path)
    assert all(s in text for s in ("Novak^Anna", "PID0123ABCD", "1.2.840.113619.2.55.3"))


def test_no_report_contains_a_raw_identifier(screened_archive, report_dir) -> None:  # noqa: ANN001
    ids = identifiers(screened_archive.archive, screened_archive.truth)
    names = [i for i in ids if not i[0].isdigit()]
    assert len(ids) > 50 and any("^" in n for n in names), "identifiers were read from the headers"
    files = [p for p in report_dir.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".html", ".pdf"} <= kinds and len(files) >= 2 + 2 * 3
    assert all("pseudonymous key" in readable_text(p) for p in files if p.suffix == ".pdf")  # text is seen
    for path in files:
        text = readable_text(path)
        leaked = sorted(i for i in ids if i in text)
        assert not leaked, f"{path.relative_to(report_dir)} contains {leaked[:3]}"
    studies = list((report_dir / "studies").glob("*.html"))
    assert studies and all(re.fullmatch(r"[0-9a-f]{16}\.html", p.name) for p in studies)


def test_pipeline_picture_reaches_the_study_report(screened_archive, report_dir) -> None:  # noqa: ANN001
    images = list((screened_archive.dest / "images").rglob("*.png"))
    assert images, "the pipeline stored its pictures under the tables"
    html = next((report_dir / "studies").glob("*.html")).read_text()
    assert "Straightened sagittal image" in html  # the stored picture, not the schematic


def test_reports_render_in_headless_chromium(screened_archive, report_dir, truth_dest, chromium_binary,
                                             tmp_path) -> None:  # noqa: ANN001
    truth_out = tmp_path / "truth_reports"
    summary = write_reports(str(truth_dest[0]), str(truth_out), studies="none")
    from reports.build import write_study
    from reports.load import load_tables
    from reports.stats import compute

    tables = load_tables(str(truth_dest[0]))
    st = compute(tables).studies
    fractured = st[st["max_grade"].fillna(0).ge(2)].iloc[0]
    import fsspec

    truth_study = Path(write_study(tables, fractured, fsspec.filesystem("file"), str(truth_out),
                                   dest=str(truth_dest[0])))
    pages = {
        "report_population.png": Path(summary.population),
        "report_dashboard.png": Path(summary.dashboard),
        "report_study.png": truth_study,
        "report_study_pipeline.png": next((report_dir / "studies").glob("*.html")),
    }
    shots = tmp_path / "screenshots"
    with Browser(chromium_binary) as browser:
        for name, page in pages.items():
            check = browser.open(page, shots / name, max_height=1700 if "dashboard" in name else 16000)
            assert not check.console_errors, f"{page.name}: {check.console_errors}"
            assert check.images, f"{page.name} has figures"
            bad = [i for i in check.images if not i["complete"] or i["w"] <= 0]
            assert not bad, f"{page.name}: figures that did not render: {bad}"
            assert (shots / name).stat().st_size > 20_000
    target = os.environ.get("VERTFRAC_SCREENSHOTS")
    if target:
        for name in ("report_population.png", "report_dashboard.png", "report_study.png"):
            shutil.copy(shots / name, Path(target) / name)
