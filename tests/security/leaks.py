"""The leak scanner of the privacy tests: which identifiers an archive holds, and what text every
output file carries (Parquet values and metadata, PNG text chunks, PDF text, anything else as
bytes), so a test can search the outputs of a run for the archive's identifiers and secrets."""

from __future__ import annotations

import json
import re
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pydicom

ID_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
           "AccessionNumber", "FrameOfReferenceUID", "StudyID")
MIN_CHARS = 4


def dicom_files(root: Path) -> Iterator[tuple[Path, pydicom.Dataset]]:
    """Every readable DICOM file under ``root`` (headers only); junk is skipped."""
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the archive's injected defects warn on purpose
                yield f, pydicom.dcmread(f, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001, S112 - junk files injected on purpose
            continue


def identifiers_of(ds: pydicom.Dataset) -> set[str]:
    """Names (whole and parts), IDs, UIDs and the birth date (as written and as ISO/EU dates)."""
    found: set[str] = set()
    for tag in ID_TAGS:
        value = str(ds.get(tag, "") or "").strip()
        if len(value) >= MIN_CHARS:
            found.add(value)
    name = str(ds.get("PatientName", "") or "")
    if name:
        found |= {name, name.replace("^", " ")}
        found |= {p for p in re.split(r"[\^ ]", name) if len(p) >= MIN_CHARS}
    dob = str(ds.get("PatientBirthDate", "") or "")
    if len(dob) == 8:
        found |= {dob, f"{dob[:4]}-{dob[4:6]}-{dob[6:]}", f"{dob[6:]}.{dob[4:6]}.{dob[:4]}"}
    return found


def archive_identifiers(root: Path) -> set[str]:
    """Every identifier in the DICOM headers under ``root`` (zip members not included)."""
    found: set[str] = set()
    for _, ds in dicom_files(root):
        found |= identifiers_of(ds)
    return found


def _png_text(data: bytes) -> list[str]:
    """Keywords and texts of a PNG's tEXt, zTXt and iTXt chunks (compressed ones inflated)."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            out.append(body.replace(b"\0", b"\n").decode("latin-1"))
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out.append(key.decode("latin-1") + "\n" + zlib.decompress(rest[1:]).decode("latin-1"))
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            translated, _, text = rest.partition(b"\0")
            text = zlib.decompress(text) if compressed else text
            out.append("\n".join(x.decode("utf-8", "replace") for x in (key, translated, text)))
    return out


def _pdf_text(data: bytes) -> list[str]:
    """The raw bytes and every (inflated) content stream of a PDF, with TJ/Tj strings joined."""
    out = []
    for m in re.finditer(rb"stream\r?\n", data):
        try:  # inflate from the stream's start: zlib stops where the stream ends
            stream = zlib.decompressobj().decompress(data[m.end():])
        except zlib.error:
            stream = data[m.end():data.find(b"endstream", m.end())]
        shown = b"".join(re.sub(rb"\\(.)", rb"\1", s[1:-1])
                         for s in re.findall(rb"\((?:\\.|[^\\)])*\)", stream))
        out += [stream.decode("latin-1"), shown.decode("latin-1")]
    return out


def file_texts(path: Path) -> list[str]:
    """What a reader of ``path`` can see, as text."""
    data = path.read_bytes()
    if data[:4] == b"PAR1":
        table = pq.read_table(path)
        meta = pq.read_metadata(path).metadata or {}
        values = {name: table.column(name).to_pylist() for name in table.column_names}
        return [json.dumps(values, default=str), str(meta)]
    texts = [data.decode("latin-1")]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        texts = _png_text(data)  # pixels are not text; the chunks are
    elif data[:4] == b"%PDF":
        texts += _pdf_text(data)
    return texts


def output_texts(root: Path) -> Iterator[tuple[str, str]]:
    """(relative path, text) of every file under ``root``, and each file's relative path itself."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        yield rel, rel  # file and folder names are outputs too
        for text in file_texts(path):
            yield rel, text


def find_leaks(texts: Iterable[tuple[str, str]], needles: Iterable[str]) -> dict[str, set[str]]:
    """Where each needle occurs (case-insensitive), as {place: needles found}."""
    lowered = sorted({n.lower() for n in needles if n}, key=len, reverse=True)
    hits: dict[str, set[str]] = {}
    for place, text in texts:
        low = text.lower()
        found = {n for n in lowered if n in low}
        if found:
            hits.setdefault(place, set()).update(found)
    return hits


def prefect_texts(flow_run_id: str) -> list[tuple[str, str]]:
    """What Prefect recorded about a flow run and its task runs: parameters, names, state
    names and messages, and every log line sent to its API (flushed first)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    out = [("prefect: flow run parameters", json.dumps(run.parameters, default=str)),
           ("prefect: flow run", f"{run.name} {run.state_name} {run.state.message if run.state else ''}")]
    out += [(f"prefect: task run {t.name}", f"{t.state_name} {t.state.message if t.state else ''}")
            for t in tasks]
    out += [("prefect: logs", "\n".join(f"{r.name} {r.message}" for r in logs))]
    return out
