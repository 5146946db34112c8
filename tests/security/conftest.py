"""Fixtures of the privacy and safety tests: an offline, private Prefect; the pipeline tests'
stand-in analyser on the path (also of Dask workers); a phantom archive laid out by identifier
(``pacs.py``) with the identifiers its headers hold; distinctive secrets to search for."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (HERE, HERE.parent / "pipeline"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

# Before anything imports prefect (as in tests/pipeline): no telemetry, a private Prefect home.
os.environ.update({
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
    "GX_ANALYTICS_ENABLED": "false",
})
if "vertfrac-prefect-" not in os.environ.get("PREFECT_HOME", ""):  # tests/pipeline may have set one
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="vertfrac-prefect-")
os.environ.pop("PREFECT_API_URL", None)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(HERE.parent / "pipeline"),
                                                         str(REPO), os.environ.get("PYTHONPATH")]))

#: secrets a run is given; none may appear in any output, log or Prefect record
SECRETS = {
    "VERTFRAC_PSEUDONYM_KEY": "pk-Zq7sL0vT9wXr2mN4bC6d",
    "AWS_ACCESS_KEY_ID": "AKIAVERTFRACLEAKTEST7",
    "AWS_SECRET_ACCESS_KEY": "s3cret/Leak+Test/9f8e7d6c5b4a3928",
}


@dataclass(frozen=True)
class PacsArchive:
    root: Path  # laid out by identifier (pacs.py)
    truth: Path
    identifiers: frozenset[str]  # names, IDs, birth dates, UIDs of every header


@pytest.fixture(scope="session")
def pacs_archive(tmp_path_factory: pytest.TempPathFactory) -> PacsArchive:
    """A 5-patient stub-rendered phantom archive with every file defect, re-laid out with
    names, patient IDs, birth dates and UIDs in its paths (one study zipped)."""
    from archives import stub_archive
    from leaks import archive_identifiers
    from pacs import DEFECTS, relayout

    base = tmp_path_factory.mktemp("pacs")
    stub_archive(str(base / "phantoms"), 5, seed=11, truth_url=str(base / "truth"), defects=DEFECTS)
    relayout(base / "phantoms", base / "archive")
    ids = archive_identifiers(base / "phantoms")  # the same headers, zipped study included
    return PacsArchive(base / "archive", base / "truth", frozenset(ids))
