"""Fixtures of the report tests: tables from the generator's truth (fast) and from a real
(stub-rendered) phantom archive screened by the pipeline's own functions (slow)."""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent / "pipeline"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(HERE.parent / "pipeline"),
                                                         os.environ.get("PYTHONPATH")]))

from truth_tables import archive_seeds, write_truth_tables  # noqa: E402

TRUTH_PATIENTS, TRUTH_SEED = 200, 2026  # the demo's seed, 200 patients


@pytest.fixture(scope="session")
def truth_dest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """Tables of the 200-patient phantom population reported by a perfect analyser."""
    dest = tmp_path_factory.mktemp("truth_tables")
    specs = write_truth_tables(str(dest), archive_seeds(TRUTH_PATIENTS, TRUTH_SEED))
    return dest, specs


@pytest.fixture(scope="session")
def truth_tables(truth_dest):  # noqa: ANN001, ANN201
    from reports.load import load_tables

    return load_tables(str(truth_dest[0]))


@pytest.fixture(scope="session")
def truth_stats(truth_tables):  # noqa: ANN001, ANN201
    from reports.stats import compute

    return compute(truth_tables)


@dataclass(frozen=True)
class ScreenedArchive:
    archive: Path
    truth: Path
    dest: Path


@pytest.fixture(scope="session")
def screened_archive(tmp_path_factory: pytest.TempPathFactory) -> ScreenedArchive:
    """A 6-patient phantom archive (names, IDs, UIDs in its headers; stub-rendered), indexed,
    selected and screened with the pipeline's functions and a stand-in analyser that draws a
    picture; tables and pictures published under ``dest``."""
    from archives import stub_archive

    from vertfrac_core.batches import TableStore, publish, stage
    from vertfrac_core.dicom.index import build_index
    from vertfrac_core.dicom.keys import DEMO_SECRET
    from vertfrac_core.screening import AnalyzerSpec, ScreenSettings, screen_study
    from vertfrac_core.tables import QC_SCHEMA, outcome_tables
    from vertfrac_core.worklist import work_items

    root = tmp_path_factory.mktemp("screened")
    archive, truth, dest = root / "archive", root / "archive_truth", root / "tables"
    stub_archive(str(archive), patients=6, seed=5, truth_url=str(truth))
    index = build_index(str(archive), secret=DEMO_SECRET)
    store = TableStore(str(dest))
    spec = AnalyzerSpec(analyze="picture_analyzer:analyze_volume", load_models="picture_analyzer:load_models",
                        version="fake-picture-1")
    settings = ScreenSettings(images=store)
    outcomes = [screen_study(it, spec, settings=settings) for it in work_items(index)]
    day = dt.date(2026, 3, 3)
    tables = outcome_tables(outcomes, run_id="run-test", batch_id="20260303T030000-00000001")
    tables["series_index"] = index.table()
    tables["qc"] = QC_SCHEMA.empty_table()
    publish(store, stage(store, "20260303T030000-00000001", day, tables))
    return ScreenedArchive(archive, truth, dest)


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    from browser import chromium

    path = chromium()
    if path is None:
        pytest.skip("Debian chromium is not installed (make install-chromium, or apt-get install chromium)")
    return path
