"""A synthetic PACS export: many studies with known truth, written to a folder or an S3 prefix.

``write_archive(url, settings)`` writes ``study_0001/series_001/IM0001.dcm`` ... (pseudonymous
names only: no patient name or ID ever becomes a path) and the ground truth as Parquet beside it
(``<url>_truth`` by default; refused inside the archive). The same settings give byte-identical
files. Planning is sequential and cheap: per study the patient and study seeds and the defects
(drawn at :class:`~vertfrac_core.phantom.defects.DefectRates`; with ``ensure_each_defect`` every
kind is placed at least once when there are enough studies, so tests can see each). Writing is
per study (:func:`~vertfrac_core.phantom.study.write_study`), optionally in a process pool.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from vertfrac_core.errors import InputError
from vertfrac_core.phantom.defects import DefectKind, DefectRates, InjectedDefect
from vertfrac_core.phantom.dicom_writer import open_fs
from vertfrac_core.phantom.series_plan import Renderer, SeriesMix
from vertfrac_core.phantom.study import StudyJob, StudyRecord, write_study
from vertfrac_core.phantom.truth import tables

log = logging.getLogger(__name__)

TRUTH_TABLES = ("patients", "series", "vertebrae", "defects")


@dataclass(frozen=True)
class ArchiveSettings:
    """What to synthesise. ``profile``: 'full' (512 matrix) or 'small' (256 matrix, fast)."""

    patients: int
    seed: int = 0
    profile: str = "full"
    workers: int = 1  # processes writing studies in parallel
    mix: SeriesMix = field(default_factory=SeriesMix)
    defects: DefectRates = field(default_factory=DefectRates)
    ensure_each_defect: bool = True
    overwrite: bool = False  # replace an existing archive and truth at the destination

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise ValueError(f"patients must be at least 1; got {self.patients}")
        if self.profile not in ("full", "small"):
            raise ValueError(f"profile must be 'full' or 'small'; got {self.profile!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1; got {self.workers}")


@dataclass(frozen=True)
class ArchiveSummary:
    url: str
    truth_url: str
    studies: int
    series: int
    files: int
    bytes: int
    fractured_patients: int
    defects: dict[str, int]
    seconds: float

    def describe(self) -> str:
        defects = ", ".join(f"{k} {v}" for k, v in sorted(self.defects.items())) or "none"
        return (
            f"wrote {self.studies} studies, {self.series} series, {self.files} files "
            f"({self.bytes / 1e6:.1f} MB) to {self.url} in {self.seconds:.1f} s\n"
            f"patients with a fracture: {self.fractured_patients}; injected defects: {defects}\n"
            f"ground truth: {self.truth_url}"
        )


def _seed(settings_seed: int, index: int, stream: int) -> int:
    state = np.random.SeedSequence([20264, settings_seed, index, stream]).generate_state(1)
    return int(state[0]) & 0x7FFFFFFF


def plan_defects(settings: ArchiveSettings) -> list[tuple[DefectKind, ...]]:
    """Defects of each study: independent draws at the configured rates, then (when
    ``ensure_each_defect`` and there are at least as many studies as kinds) every kind not drawn
    is given to a study that has none yet, chosen at random."""
    rng = np.random.default_rng(np.random.SeedSequence([20265, settings.seed]))
    kinds = list(DefectKind)
    per_study = [
        [k for k, u in zip(kinds, rng.random(len(kinds)), strict=True) if u < settings.defects.rate(k)]
        for _ in range(settings.patients)
    ]
    if settings.ensure_each_defect and settings.patients >= len(kinds):
        for kind in kinds:
            if any(kind in d for d in per_study):
                continue
            fewest = min(len(d) for d in per_study)
            candidates = [i for i, d in enumerate(per_study) if len(d) == fewest]
            per_study[int(rng.choice(candidates))].append(kind)
    return [tuple(sorted(d, key=kinds.index)) for d in per_study]


def plan_jobs(url: str, settings: ArchiveSettings, storage_options: dict | None = None) -> list[StudyJob]:
    """One :class:`StudyJob` per patient, in archive order."""
    return [
        StudyJob(index=i, patient_seed=_seed(settings.seed, i, 1), study_seed=_seed(settings.seed, i, 2),
                 profile=settings.profile, mix=settings.mix, defects=d, url=url,
                 storage_options=storage_options)
        for i, d in enumerate(plan_defects(settings))
    ]


def default_truth_url(url: str) -> str:
    return url.rstrip("/") + "_truth"


def _prepare(url: str, truth_url: str, settings: ArchiveSettings, storage_options: dict | None) -> None:
    """Refuse truth inside the archive (or the reverse) and non-empty destinations."""
    fs, root = open_fs(url, storage_options)
    fs_t, troot = open_fs(truth_url, storage_options)
    if fs.protocol == fs_t.protocol:
        for a, b in ((root, troot), (troot, root)):
            if b == a or b.startswith(a + "/"):
                raise InputError(
                    f"ground truth {truth_url!r} and archive {url!r} overlap; the truth must lie "
                    "beside the archive, never inside it: pass a separate truth URL"
                )
    for f, r, what in ((fs, root, "archive"), (fs_t, troot, "truth")):
        if f.exists(r) and f.ls(r):
            if not settings.overwrite:
                raise InputError(
                    f"{what} destination {r!r} is not empty; choose an empty location or set "
                    "overwrite (vertfrac synth --overwrite)"
                )
            f.rm(r, recursive=True)


def _write_truth(truth_url: str, records: list[StudyRecord], settings: ArchiveSettings,
                 storage_options: dict | None) -> None:
    fs, root = open_fs(truth_url, storage_options)
    fs.makedirs(root, exist_ok=True)
    defects: list[InjectedDefect] = [d for r in records for d in r.defects]
    frames = tables([r.patient for r in records], [s for r in records for s in r.series],
                    [v for r in records for v in r.vertebrae], defects)
    for name in TRUTH_TABLES:
        with fs.open(f"{root}/{name}.parquet", "wb") as fh:
            frames[name].to_parquet(fh, index=False)
    content = {k: v for k, v in asdict(settings).items() if k not in ("workers", "overwrite")}
    meta = {"settings": content, "tables": list(TRUTH_TABLES)}  # only what shapes the content
    fs.pipe_file(f"{root}/settings.json", json.dumps(meta, indent=1, sort_keys=True).encode())


def write_archive(
    url: str,
    settings: ArchiveSettings,
    truth_url: str | None = None,
    *,
    storage_options: dict | None = None,
    renderer: Renderer | None = None,
) -> ArchiveSummary:
    """Write a synthetic archive to ``url`` and its ground truth to ``truth_url``.

    ``storage_options`` go to fsspec for both URLs (S3 credentials otherwise come from the
    environment as usual for s3fs). ``renderer`` replaces
    :func:`~vertfrac_core.phantom.render.render_ct` (a picklable function when ``workers`` > 1).
    """
    t0 = time.perf_counter()
    truth_url = truth_url or default_truth_url(url)
    _prepare(url, truth_url, settings, storage_options)
    jobs = plan_jobs(url, settings, storage_options)
    if settings.workers == 1:
        records = [write_study(job, renderer) for job in jobs]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=settings.workers, mp_context=ctx) as pool:
            records = list(pool.map(write_study, jobs, [renderer] * len(jobs)))
    _write_truth(truth_url, records, settings, storage_options)
    counts = Counter(d.kind.value for r in records for d in r.defects)
    summary = ArchiveSummary(
        url=url, truth_url=truth_url, studies=len(records),
        series=sum(len(r.series) for r in records), files=sum(r.n_files for r in records),
        bytes=sum(r.n_bytes for r in records),
        fractured_patients=sum(bool(r.patient["fractured"]) for r in records),
        defects=dict(counts), seconds=time.perf_counter() - t0,
    )
    log.info("archive %s: %d studies, %d files in %.1f s", url, summary.studies, summary.files, summary.seconds)
    return summary
