"""Nothing identifying leaves a run: every output of ``screen_flow`` plus ``write_reports`` over
an archive laid out by identifier (``pacs.py``) is searched for the archive's patient names, IDs,
birth dates and UIDs, and for the run's secrets. The negative controls show the search would
find them, and that this archive would leak without the redaction.

The run itself (slow): a LocalCluster, the pipeline tests' stand-in analyser made hostile
(``hostile_analyzer``: it hangs on one study and writes the archive path into its pictures'
metadata), a per-scan memory cap that one study's every candidate series exceeds and a 3 s
timeout; the run goes on past both and records them as rows. Searched: the tables and every
other file under the destination (Parquet values and metadata, pictures' PNG chunks, reports'
HTML and PDF text, state files, file names), the log records of this process, everything
written to stdout/stderr (Dask workers included), and what Prefect recorded (flow run
parameters, task and flow run states, the logs sent to its API).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile_analyzer import digest
from leaks import file_texts, find_leaks, output_texts, prefect_texts

from tests.security.conftest import SECRETS
from vertfrac_core.dicom.index import build_index
from vertfrac_core.limits import volume_bytes
from vertfrac_core.redact import png_chunk, strip_png_text
from vertfrac_core.worklist import work_items

TIMEOUT_S = 3.0
MAX_FALLBACKS = 2


def _plan_limits(archive: Path, key: str) -> tuple[str, str, float]:
    """(study key to skip as too large, patient ID to hang on, max_volume_mb): the cap lies
    between the largest and the second largest 'smallest candidate' of the studies, so exactly
    one study has no series under it; the hanging patient is another one."""
    items = work_items(build_index(str(archive), secret=key))
    smallest = {it.study_key: min(volume_bytes(s) for s in it.candidates[:1 + MAX_FALLBACKS])
                for it in items}
    ranked = sorted(smallest, key=smallest.get, reverse=True)
    too_large, second = ranked[0], ranked[1]
    assert smallest[too_large] > smallest[second], smallest
    cap_mb = (smallest[too_large] + smallest[second]) / 2 / (1 << 20)
    hang = next(it for it in items if it.study_key == ranked[-1])
    return too_large, hang.selected.first.patient_id, cap_mb


class Records(logging.Handler):
    """Every log record of this process, formatted (a public name: Prefect keeps such handlers)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_no_output_log_or_prefect_record_holds_an_identifier_or_secret(
        pacs_archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:  # noqa: ANN001
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    too_large, hang_pid, cap_mb = _plan_limits(pacs_archive.root, SECRETS["VERTFRAC_PSEUDONYM_KEY"])
    records = Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.INFO)
    dest = tmp_path / "out"
    t0 = time.perf_counter()
    try:
        from flows.screen import screen_flow
        from reports.build import write_reports

        summary = screen_flow(
            str(pacs_archive.root), str(dest / "tables"), workers=2,
            analyze="hostile_analyzer:analyze_volume", load_models="hostile_analyzer:load_models",
            analyzer_options={"hang_on": digest(hang_pid), "hang_s": 120.0},
            max_fallbacks=MAX_FALLBACKS,
            max_volume_mb=cap_mb, scan_timeout_s=TIMEOUT_S,
            retry_delays_s=[0.2], storage_attempts=2, storage_retry_s=0.1)
        write_reports(str(dest / "tables"), str(dest / "reports"), studies="all")
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    elapsed = time.perf_counter() - t0
    out, err = capfd.readouterr()

    # the run went on past the oversized and the hanging study, and recorded both
    scans = pd.read_parquet(dest / "tables" / "scans")
    by_study = scans.set_index("study_key")
    assert by_study.loc[too_large, "status"] == "skipped"
    assert by_study.loc[too_large, "error_code"] == "series_too_large"
    hung = scans[scans.error_code == "timeout"]
    assert len(hung) == 1 and hung.status.iloc[0] == "failed"
    assert (scans.status == "ok").sum() == len(scans) - 2 >= 2, scans[["status", "error_code"]]
    assert summary.screened == len(scans) and elapsed < 120 + TIMEOUT_S  # not the 120 s hang

    # the search is not vacuous: every kind of output exists and the needles are many
    files = [p for p in dest.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".parquet", ".png", ".html", ".pdf", ".json"} <= kinds, kinds
    assert len(pacs_archive.identifiers) > 500 and len(records.lines) > 10 and err

    texts = list(output_texts(dest))
    texts += [("log records", "\n".join(records.lines)), ("stdout", out), ("stderr", err)]
    texts += prefect_texts(summary.run_id)
    needles = set(pacs_archive.identifiers) | set(SECRETS.values())
    leaks = find_leaks(texts, needles)
    assert not leaks, {k: sorted(v)[:4] for k, v in leaks.items()}


def test_the_search_finds_identifiers_planted_in_every_kind_of_output(pacs_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """Negative control: one identifier hidden in each kind of output is found."""
    ids = sorted(pacs_archive.identifiers)
    uid = next(i for i in ids if i.startswith("1.2.826"))
    pid = next(i for i in ids if i.startswith("PID"))
    name = next(i for i in ids if "^" in i)
    dob = next(i for i in ids if len(i) == 10 and i[4] == "-")
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    pq.write_table(pa.table({"levels": [["T1", f"x {uid} y"]], "n": [1]}), out / "tables" / "a.parquet")
    pq.write_table(pa.table({"n": [1]}).replace_schema_metadata({"note": pid}), out / "tables" / "b.parquet")
    png = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", bytes(13))
           + png_chunk(b"zTXt", b"Comment\x00\x00" + __import__("zlib").compress(name.encode()))
           + png_chunk(b"iTXt", b"Author\x00\x00\x00\x00\x00" + dob.encode()) + png_chunk(b"IEND", b""))
    (out / "picture.png").write_bytes(png)
    (out / f"{uid}.json").write_text("{}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(out / "report.pdf") as pdf:
        fig = plt.figure()
        fig.text(0.1, 0.5, f"patient {pid}")
        pdf.savefig(fig)
        plt.close(fig)
    leaks = find_leaks(output_texts(out), pacs_archive.identifiers)
    found = {place: {n for n in v} for place, v in leaks.items()}
    assert uid.lower() in found["tables/a.parquet"] and pid.lower() in found["tables/b.parquet"]
    assert {name.lower(), dob.lower()} <= found["picture.png"]
    assert pid.lower() in found["report.pdf"] and uid.lower() in found[f"{uid}.json"]
    assert not find_leaks([("png", t) for t in file_texts(out / "picture.png")][:0], ids)
    stripped = tmp_path / "stripped.png"
    stripped.write_bytes(strip_png_text(png))
    assert not find_leaks([("png", t) for t in file_texts(stripped)], ids)


def test_this_archive_would_leak_without_redaction(pacs_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """Negative control on the real data path: the series index of this archive names
    patients in its text columns until it is redacted."""
    index = build_index(str(pacs_archive.root), secret=SECRETS["VERTFRAC_PSEUDONYM_KEY"])
    for redact, name in ((False, "raw.parquet"), (True, "redacted.parquet")):
        pq.write_table(index.table(redact=redact), tmp_path / name)
    raw = find_leaks([("raw", t) for t in file_texts(tmp_path / "raw.parquet")], pacs_archive.identifiers)
    assert len(raw["raw"]) > 20  # names, IDs, birth dates and UIDs in source and descriptions
    assert any("^" in n or n.isalpha() for n in raw["raw"]) and any(n.startswith("pid") for n in raw["raw"])
    clean = find_leaks([("redacted", t) for t in file_texts(tmp_path / "redacted.parquet")],
                       pacs_archive.identifiers)
    assert not clean, clean
