"""`vertfrac index`: prints keys (never raw UIDs), selection and reasons; writes Parquet."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from tests.dicom.conftest import EXAMPLE_DICOM, QUIRKS, need
from vertfrac_core.cli import app
from vertfrac_core.dicom.schema import SERIES_INDEX_SCHEMA


def test_index_prints_and_writes_series_index(tmp_path: Path) -> None:
    out = tmp_path / "tables"
    res = CliRunner().invoke(app, ["index", str(need(EXAMPLE_DICOM)), "--out", str(out)],
                             env={"VERTFRAC_PSEUDONYM_KEY": "test-secret-of-16-chars"})
    assert res.exit_code == 0, res.output
    assert "yes" in res.output and "AXIAL" in res.output
    assert "1.3.12.2.1107" not in res.output  # no raw UID (Frame of Reference, file names)
    (part,) = list(out.glob("series_index/run_date=*/part-*.parquet"))
    table = pq.read_table(part)
    assert table.schema.names == SERIES_INDEX_SCHEMA.names
    assert table.num_rows == 1 and table["selected"][0].as_py() and table["n_slices"][0].as_py() == 20


def test_index_lists_reasons_for_bad_files() -> None:
    res = CliRunner().invoke(app, ["index", str(need(QUIRKS))])
    assert res.exit_code == 0, res.output
    for reason in ("localizer", "not_dicom", "malformed", "too_few_slices"):
        assert reason in res.output
