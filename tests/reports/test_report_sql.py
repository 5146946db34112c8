"""Every SQL block of docs/dashboards.md runs in DuckDB against a small table set, and the
prevalence query agrees with the statistics module."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "dashboards.md"


def sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def con(truth_dest):  # noqa: ANN001, ANN201
    blocks = sql_blocks()
    c = duckdb.connect()
    c.execute(blocks[0].replace("DEST", str(truth_dest[0])))
    yield c
    c.close()


def test_the_doc_has_the_common_questions() -> None:
    blocks = sql_blocks()
    assert len(blocks) >= 8 and "CREATE OR REPLACE VIEW studies" in blocks[0]


@pytest.mark.parametrize("i", range(1, len(sql_blocks())))
def test_each_query_runs_and_answers(con, i: int) -> None:  # noqa: ANN001
    rows = con.execute(sql_blocks()[i]).fetchall()
    assert rows, f"query {i} of docs/dashboards.md returned nothing:\n{sql_blocks()[i]}"


def test_prevalence_query_matches_the_statistics(con, truth_stats) -> None:  # noqa: ANN001
    df = con.execute(sql_blocks()[1]).df().set_index(["age_band", "sex"])
    py = truth_stats.prevalence_any["age_band_sex"].set_index(["age_band", "sex"])
    assert list(df.index) == list(py.index)
    assert (df["n"] == py["n"]).all() and (df["cases"] == py["cases"]).all()
    for sql_col, col in (("prevalence_pct", "prevalence"), ("ci_low_pct", "ci_low"), ("ci_high_pct", "ci_high")):
        assert ((df[sql_col] - 100 * py[col]).abs() <= 0.051).all(), col


def test_studies_view_is_one_current_row_per_study(con, truth_stats) -> None:  # noqa: ANN001
    n, ok = con.execute("SELECT count(*), count_if(status = 'ok') FROM studies").fetchone()
    assert (n, ok) == (truth_stats.funnel.screened, truth_stats.funnel.analysed)
