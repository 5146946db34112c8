"""The `vertfrac` command line. Heavy imports live inside each command so `--help` is instant."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Screen archived CT for vertebral compression fractures and low bone density.",
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("openjpeg").setLevel(logging.WARNING)  # one INFO line per encoded tile


@app.command()
def synth(
    out: str = typer.Option(..., "--out", help="Destination folder or fsspec URL (s3://bucket/prefix)."),
    patients: int = typer.Option(10, "--patients", min=1, help="Number of patients (one study each)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same archive."),
    profile: str = typer.Option(
        "full", "--profile", help="'full' (512 matrix, realistic) or 'small' (fast, 256 matrix)."
    ),
    truth: str = typer.Option(
        None, "--truth", help="Where the ground-truth Parquet goes (default: OUT + '_truth')."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes writing studies in parallel."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing archive and truth."),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, SeaweedFS...)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write a synthetic archive of spine CT studies with ground truth beside it."""
    _setup_logging(verbose)
    from vertfrac_core.phantom.archive import ArchiveSettings, write_archive

    settings = ArchiveSettings(
        patients=patients, seed=seed, profile=profile, workers=workers, overwrite=overwrite
    )
    options = {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url else None
    summary = write_archive(out, settings, truth_url=truth, storage_options=options)
    typer.echo(summary.describe())


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the archive, tables and reports."),
    patients: int = typer.Option(20, "--patients", min=1),
    seed: int = typer.Option(2026, "--seed"),
) -> None:
    """The whole pipeline on an embedded default: a small synthetic archive, screened locally."""
    _setup_logging(False)
    from vertfrac_core.phantom.archive import ArchiveSettings, write_archive

    out.mkdir(parents=True, exist_ok=True)
    archive = out / "archive"
    summary = write_archive(
        str(archive), ArchiveSettings(patients=patients, seed=seed, profile="small", overwrite=True),
        truth_url=str(out / "truth"),
    )
    typer.echo(summary.describe())
    typer.echo(f"archive: {archive.resolve()}")
    typer.echo(f"ground truth: {(out / 'truth').resolve()}")
    tables = out / "tables"
    result = _run_screen(str(archive), str(tables), scheduler=None, workers=2, endpoint_url=None,
                         analyze=None, load_models=None, device="cpu", gpu=False, batch_size=200,
                         max_failure_rate=0.5, demo=True)
    typer.echo(result.describe())
    _echo_tables(tables)
    from reports.build import write_reports

    typer.echo(write_reports(str(tables), str(out / "reports"), studies="all").describe())


def _offline_prefect() -> None:
    """Telemetry off and an embedded Prefect API unless the caller configured one (the edge)."""
    import os

    for k, v in {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                 "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
                 "GX_ANALYTICS_ENABLED": "false"}.items():
        os.environ.setdefault(k, v)


def _run_screen(source: str, out: str, **kw: object):  # noqa: ANN202 - flows.screen.RunSummary
    import sys

    _offline_prefect()
    for name in ("distributed", "great_expectations", "httpx", "openjpeg"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from flows.screen import screen_flow
    from vertfrac_core.screening import DEFAULT_ANALYZE, DEFAULT_LOAD_MODELS

    kw["analyze"] = kw.get("analyze") or DEFAULT_ANALYZE
    kw["load_models"] = kw.get("load_models") or DEFAULT_LOAD_MODELS
    return screen_flow(source, out, progress=sys.stderr.isatty(), **kw)  # type: ignore[arg-type]


def _require_pseudonym_key() -> None:
    """Stop before anything starts when the pseudonym key is missing or unusable."""
    from vertfrac_core.errors import ConfigError
    from vertfrac_core.privacy import pseudonym_key

    try:
        pseudonym_key()
    except ConfigError as err:
        typer.echo(f"not started: {err}", err=True)
        raise typer.Exit(code=2) from err


def _echo_tables(dest: Path | str) -> None:
    for t in ("series_index", "scans", "vertebrae", "qc"):
        where = Path(dest).resolve() / t if "://" not in str(dest) else f"{dest}/{t}"
        typer.echo(f"{t}: {where}/run_date=*/batch-*.parquet")


@app.command()
def screen(
    source: str = typer.Argument(..., help="Archive folder or fsspec URL (s3://bucket/prefix)."),
    out: str = typer.Option(..., "--out", help="Where the tables go (folder or s3://bucket/prefix)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Running Dask scheduler, tcp://host:8786 (default: a LocalCluster)."),
    workers: int = typer.Option(2, "--workers", min=1, help="LocalCluster worker processes."),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, SeaweedFS...); credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."),
    analyze: str = typer.Option(None, "--analyzer", help="Analyser as module:function (default vertfrac_core.analyze:analyze_volume)."),
    load_models: str = typer.Option(None, "--models", help="Model loader as module:function (default vertfrac_core.analyze:load_models)."),
    device: str = typer.Option("cpu", "--device", help="Device the models load on (cpu, cuda)."),
    gpu: bool = typer.Option(False, "--gpu", help="Each scan asks for the Dask resource GPU=1."),
    batch_size: int = typer.Option(200, "--batch-size", min=1, help="Scans per published batch."),
    max_failure_rate: float = typer.Option(0.5, "--max-failure-rate", min=0.0, max=1.0, help="Quality gate on failed scans per batch."),
    max_volume_mb: float = typer.Option(4096, "--max-volume-mb", min=1, help="Skip a series whose decoded volume would exceed this (MiB)."),
    scan_timeout_s: float = typer.Option(1800, "--scan-timeout", min=1, help="Stop one scan (load + analysis) after this many seconds."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Screen an archive: index, select, infer on Dask, check and publish Parquet tables.

    Re-running screens only new or changed series. Runs as a Prefect flow (embedded API unless
    PREFECT_API_URL points to a server). Keys are keyed hashes: the run refuses to start unless
    VERTFRAC_PSEUDONYM_KEY holds your secret (16+ characters; docs/security.md).
    """
    _setup_logging(verbose)
    _require_pseudonym_key()
    try:
        result = _run_screen(source, out, scheduler=scheduler, workers=workers,
                             endpoint_url=endpoint_url, analyze=analyze, load_models=load_models,
                             device=device, gpu=gpu, batch_size=batch_size,
                             max_failure_rate=max_failure_rate, max_volume_mb=max_volume_mb,
                             scan_timeout_s=scan_timeout_s)
    except Exception as err:  # the flow already logged the details
        typer.echo(f"screening failed: {type(err).__name__}: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(result.describe())
    _echo_tables(out)


@app.command()
def index(
    source: str = typer.Argument(..., help="DICOM folder, file, zip, or fsspec URL (s3://bucket/prefix)."),
    out: str = typer.Option(None, "--out", help="Write the series_index Parquet table under this folder/URL."),
    workers: int = typer.Option(8, "--workers", min=1, help="Parallel header reads."),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, SeaweedFS...)."),
    show_paths: bool = typer.Option(False, "--show-paths", help="Print source folders (may embed UIDs)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Index an archive: list its series, the one selected per study, and why each other is not.

    Identifiers are printed and written as keyed hashes under VERTFRAC_PSEUDONYM_KEY; without
    it the listing uses the public demo key, and --out (a table for others) is refused.
    """
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from vertfrac_core.dicom.index import IndexSettings, build_index, write_series_index
    from vertfrac_core.dicom.keys import DEMO_SECRET
    from vertfrac_core.privacy import PSEUDONYM_KEY_ENV, pseudonym_key

    _setup_logging(verbose)
    if out:
        _require_pseudonym_key()
    secret = pseudonym_key(demo=not out)
    if secret.encode() == DEMO_SECRET:
        logging.getLogger("vertfrac").warning("%s not set: listing with the public demo key",
                                              PSEUDONYM_KEY_ENV)
    options = {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url else None
    result = build_index(source, secret=secret, storage_options=options,
                         settings=IndexSettings(workers=workers))
    table = result.table()
    rows = result.table(redact=False).to_pylist() if show_paths else table.to_pylist()
    console = Console(width=200)
    view = Table(title=f"{len(result.series)} series in {len({r['study_key'] for r in rows if r['study_key']})} studies")
    for col in ("study", "series", "mod", "orient", "slices", "thick mm", "cover mm", "kernel",
                "selected", "reason", "detail") + (("source",) if show_paths else ()):
        view.add_column(col)

    def fmt(x: object, nd: int = 1) -> str:
        return "" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)

    for r in sorted((r for r in rows if r["study_key"]), key=lambda r: (r["study_key"], r["rank"] if r["rank"] is not None else 99)):
        cells = [r["study_key"][:8], r["series_key"][:8], fmt(r["modality"]), fmt(r["orientation"]),
                 fmt(r["n_slices"]), fmt(r["slice_thickness_mm"]), fmt(r["coverage_mm"], 0),
                 fmt(r["kernel"]), "yes" if r["selected"] else "", fmt(r["reason"]),
                 fmt(r["reason_detail"])]
        view.add_row(*cells, *((r["source"],) if show_paths else ()))
    console.print(view)
    bad = [r for r in rows if not r["study_key"]]
    if bad:
        counts = Counter(r["reason"] for r in bad)
        files = Table(title=f"{len(bad)} files without a usable image")
        for col in ("reason", "files", "example"):
            files.add_column(col)
        for reason, n in counts.most_common():
            example = next(r["reason_detail"] for r in bad if r["reason"] == reason)
            files.add_row(reason, str(n), example)
        console.print(files)
    if out:
        typer.echo(f"series_index written to {write_series_index(table, out, storage_options=options)}")


if __name__ == "__main__":  # pragma: no cover
    app()


train_app = typer.Typer(no_args_is_help=True, help="Train the models on phantoms (and real data).")
evaluate_app = typer.Typer(no_args_is_help=True, help="Measure the models; results go to benchmarks/results/.")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")


@train_app.command("localizer")
def train_localizer_cmd(
    out: Path = typer.Option(Path("runs/localizer"), "--out", help="Folder for checkpoints, loss log and weights."),
    steps: int = typer.Option(1500, "--steps", min=1),
    batch: int = typer.Option(3, "--batch", min=1),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    install: bool = typer.Option(False, "--install", help="Copy the weights into vertfrac_core/weights/."),
    init_from: Path = typer.Option(None, "--init-from", help="Start from these weights (new schedule); "
                                   "tensors another architecture shares are taken over."),
    arch: str = typer.Option("patch", "--arch", help="Network: 'patch' (8 mm inside, the shipped one) "
                             "or 'full' (4 mm throughout, the first one)."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for torch."),
) -> None:
    """Train the 3D spine localizer on phantoms rendered on the fly."""
    _setup_logging(False)
    import shutil

    from vertfrac_core.train.localizer import LocalizerTrainSettings, train_localizer

    weights = train_localizer(LocalizerTrainSettings(out_dir=str(out), steps=steps, batch=batch, arch=arch,
                                                     threads=threads,
                                                     init_from=str(init_from) if init_from else None), resume=resume)
    typer.echo(f"weights: {weights}")
    if install:
        dest = Path(__file__).parent / "weights" / "localizer.pt"
        shutil.copy(weights, dest)
        typer.echo(f"installed: {dest}")


@evaluate_app.command("localizer")
def evaluate_localizer_cmd(
    phantoms: int = typer.Option(100, "--phantoms", min=0, help="Held-out phantoms to render and score."),
    seed: int = typer.Option(0, "--seed", help="First phantom seed (training uses seeds >= 1,000,000)."),
    profile: str = typer.Option("full", "--profile", help="Acquisition profile of the phantoms."),
    real: bool = typer.Option(True, "--real/--no-real", help="Also score the real CTs in ../shared/data."),
    weights: Path = typer.Option(None, "--weights", help="Localizer weights (default: shipped)."),
    second_look: bool = typer.Option(False, "--second-look", help="Score the line after the second look "
                                     "(moved onto the bodies step 2 found), as `analyze` reports it."),
    centring: bool = typer.Option(True, "--centring/--no-centring", help="Step 1 as shipped (the "
                                  "network's line centred on the bodies' walls) or the network's line "
                                  "alone (tables localizer_network_*)."),
    out: Path = typer.Option(Path("benchmarks/results"), "--out", help="Folder for the result tables."),
) -> None:
    """Distance from true body centres to the predicted centre line; writes result tables."""
    _setup_logging(False)
    from vertfrac_core.eval.localizer import evaluate, phantom_cases, real_cases
    from vertfrac_core.eval.report import write_localizer_tables
    from vertfrac_core.localize.centring import CentringSettings
    from vertfrac_core.localize.model import WEIGHTS, Localizer

    loc: Any = Localizer(weights or WEIGHTS, centring=CentringSettings() if centring else None)
    if second_look:
        from vertfrac_core.analyze import Models, SecondLookLocalizer, load_models

        m = load_models()
        loc = SecondLookLocalizer(Models(loc, m.detector, m.version))
    results = {}
    if phantoms:
        results["phantoms"] = evaluate(phantom_cases(phantoms, seed, profile), loc)
    if real:
        shared = Path(__file__).resolve().parents[2] / "shared" / "data"
        results["real"] = evaluate(real_cases(shared), loc)
    for name, path in write_localizer_tables(results, out, f"seeds {seed}..{seed + phantoms - 1}, profile {profile}",
                                             "localizer_second_look" if second_look else
                                             "localizer" if centring else "localizer_network").items():
        typer.echo(f"{name}: {path}")


@train_app.command("detector")
def train_detector_cmd(
    data: Path = typer.Option(Path("runs/detector_data"), "--data", help="Folder of rendered samples."),
    out: Path = typer.Option(Path("runs/detector"), "--out"),
    generate: int = typer.Option(0, "--generate", min=0, help="First render this many samples into DATA."),
    seed_start: int = typer.Option(2_000_000, "--seed-start", min=2_000_000, help="First seed rendered."),
    enrich: bool = typer.Option(False, "--enrich", help="Rendered phantoms carry 2-5 forced fractures."),
    coarse_share: float = typer.Option(0.25, "--coarse-share", min=0.0, max=1.0,
                                       help="Share of rendered samples on isotropic 1.5-3 mm voxels."),
    steps: int = typer.Option(1200, "--steps", min=1),
    lr: float = typer.Option(2e-3, "--lr", min=0.0),
    init_from: Path = typer.Option(None, "--init-from", help="Start from these weights (new schedule)."),
    zoom_share: float = typer.Option(0.0, "--zoom-share", min=0.0, max=1.0,
                                     help="Share of training crops scaled by 0.85-1.3 (body size variety)."),
    resume: bool = typer.Option(False, "--resume"),
    install: bool = typer.Option(False, "--install", help="Copy the weights into vertfrac_core/weights/."),
) -> None:
    """Train the 2D keypoint detector on straightened phantom images."""
    _setup_logging(False)
    import shutil

    from vertfrac_core.train.detector import DetectorTrainSettings, generate_samples, train_detector

    if generate:
        generate_samples(str(data), seed_start=seed_start, n=generate, enrich=enrich, coarse_share=coarse_share)
    weights = train_detector(DetectorTrainSettings(data_dir=str(data), out_dir=str(out), steps=steps, lr=lr,
                                                   init_from=str(init_from) if init_from else None,
                                                   zoom_share=zoom_share),
                             resume=resume)
    typer.echo(f"weights: {weights}")
    if install:
        dest = Path(__file__).parent / "weights" / "detector.pt"
        shutil.copy(weights, dest)
        typer.echo(f"installed: {dest}")


@app.command()
def analyze(
    path: str = typer.Argument(..., help="A DICOM folder, a zip of one, a DICOM file or a NIfTI file."),
    out: Path = typer.Option(Path("vertfrac_out"), "--out", help="Folder for result.json, the PNG and Parquet rows."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Analyse one CT: vertebra table, result.json, the annotated sagittal image."""
    _setup_logging(verbose)
    from vertfrac_core.analyze import analyze_path
    from vertfrac_core.result_rows import write_result_rows

    res = analyze_path(path, out)
    write_result_rows(res, out)
    if res.status.value != "ok":
        typer.echo(f"FAILED at {res.failed_stage.value if res.failed_stage else '?'}: {res.error}", err=True)
        typer.echo(f"result: {out / 'result.json'}")
        raise typer.Exit(code=2)
    from vertfrac_core.detect.levels import level_label

    typer.echo(f"{'level':<6}{'conf':>6}{'ha':>7}{'hm':>7}{'hp':>7}{'loss':>7}{'grade':>6}  {'type':<10}{'HU':>7}")
    for v in res.vertebrae:
        hu = "-" if v.trabecular_hu is None else f"{v.trabecular_hu:.0f}"
        typer.echo(f"{level_label(v.__dict__):<6}{v.level_confidence:>6.2f}{v.ha_mm:>7.1f}{v.hm_mm:>7.1f}{v.hp_mm:>7.1f}"
                   f"{v.height_loss:>7.2f}{v.grade:>6}  {v.type:<10}{hu:>7}")
    at = next((v for v in res.vertebrae if v.level == res.l1_hu_level), None)
    where = level_label(at.__dict__) if at is not None else res.l1_hu_level
    l1 = "-" if res.l1_hu is None else f"{res.l1_hu:.0f} HU at {where}"
    typer.echo(f"max grade {res.max_grade}; L1 attenuation {l1} ({res.density_flag.value}); "
               f"timings {res.timings_s}")
    typer.echo(f"result: {out / 'result.json'}  image: {out / 'sagittal.png'}")


def _write_metrics(name: str, summary: dict, note: str, out: Path) -> Path:
    from datetime import date

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    lines = [f"# {name}", "", f"Run {date.today().isoformat()} ({note}).", "", "| metric | value |", "|---|---|"]
    for k, v in summary.items():
        lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    path.write_text("\n".join(lines) + "\n")
    return path


@evaluate_app.command("detector")
def evaluate_detector_cmd(
    phantoms: int = typer.Option(200, "--phantoms", min=1),
    seed: int = typer.Option(0, "--seed", help="First seed (training uses seeds >= 2,000,000)."),
    weights: Path = typer.Option(None, "--weights"),
    samples: Path = typer.Option(None, "--samples", help="Folder of pre-rendered held-out samples "
                                 "(`generate_samples`); missing seeds are rendered."),
    out: Path = typer.Option(Path("benchmarks/results"), "--out"),
    noise_hu: float = typer.Option(
        0.0, "--noise-hu", min=0.0,
        help="White noise (HU standard deviation) added to every image, seeded per phantom: a noisier "
             "scan than the phantoms' own (low dose, sharp kernel). The table is then "
             "detector_phantoms_noise<N>.md."),
) -> None:
    """Detection, keypoints, levels and grading on straightened held-out phantom images."""
    _setup_logging(False)
    from vertfrac_core.detect.model import WEIGHTS, Detector
    from vertfrac_core.eval.detector import evaluate_detector

    s = evaluate_detector(phantoms, seed, Detector(weights or WEIGHTS),
                          str(samples) if samples else None, noise_hu=noise_hu).summary()
    name = f"detector_phantoms_noise{noise_hu:g}" if noise_hu > 0 else "detector_phantoms"
    extra = f", white noise of {noise_hu:g} HU added to every image" if noise_hu > 0 else ""
    typer.echo(_write_metrics(name, s, f"seeds {seed}..{seed + phantoms - 1}, "
                              f"straightened images with step-1-like line errors{extra}", out))


@evaluate_app.command("real")
def evaluate_real_cmd(
    out: Path = typer.Option(Path("benchmarks/results"), "--out"),
    resolution_phantoms: int = typer.Option(
        40, "--resolution-phantoms", min=0,
        help="Held-out phantoms whose L1-L5 masks, drawn at 1, 1.5 and 3 mm, show what each reference "
             "can resolve (0: skip)."),
    thicknesses: str = typer.Option(
        "2,3,5", "--thicknesses",
        help="Slice thicknesses (mm, comma-separated) at which the thin-slice real CTs are "
             "reconstructed again and analysed against the same masks ('': skip)."),
    noise: str = typer.Option(
        "40,80", "--noise-hu",
        help="White noise levels (HU, comma-separated) added to the real CTs, two seeded "
             "realisations each ('': skip)."),
) -> None:
    """Step 2 on the real CTs of ../shared/data/real, vertebra by vertebra, against their masks."""
    _setup_logging(False)
    from datetime import date

    from vertfrac_core.analyze import load_models
    from vertfrac_core.eval.real import evaluate_real, reference_resolution, write_real_table

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    m = load_models()
    ths = _positive_list(thicknesses, "--thicknesses")
    noises = _positive_list(noise, "--noise-hu")
    rows = evaluate_real(shared, m)
    thick = {t: evaluate_real(shared, m, thickness_mm=t) for t in ths}
    noisy = {(hu, rep): evaluate_real(shared, m, noise_hu=hu, noise_seed=rep) for hu in noises for rep in (1, 2)}
    seeds = range(1000, 1000 + resolution_phantoms)
    typer.echo(write_real_table(rows, out, f"Run {date.today().isoformat()}, models {m.version}.",
                                (reference_resolution(seeds), seeds) if resolution_phantoms else None,
                                thick, noisy))


def _positive_list(text: str, option: str) -> list[float]:
    """"2,3,5" -> [2.0, 3.0, 5.0]; '' -> []; anything else is a usage error."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise typer.BadParameter(f"{option}: expected numbers such as 2,3,5; got {text!r}") from err
    if any(not v > 0 for v in values):
        raise typer.BadParameter(f"{option} must be positive; got {text!r}")
    return values


@evaluate_app.command("pipeline")
def evaluate_pipeline_cmd(
    phantoms: int = typer.Option(50, "--phantoms", min=1),
    seed: int = typer.Option(0, "--seed"),
    profile: str = typer.Option("full", "--profile"),
    out: Path = typer.Option(Path("benchmarks/results"), "--out"),
) -> None:
    """Whole-scan analysis (step 1 included) on rendered held-out phantoms."""
    _setup_logging(False)
    from vertfrac_core.analyze import load_models
    from vertfrac_core.eval.detector import evaluate_pipeline

    s = evaluate_pipeline(phantoms, seed, load_models(), profile).summary()
    typer.echo(_write_metrics("pipeline_phantoms", s, f"seeds {seed}..{seed + phantoms - 1}, profile {profile}", out))


@app.command()
def report(
    dest: str = typer.Argument(..., help="Where the tables are (the --out of vertfrac screen): folder or s3://bucket/prefix."),
    study: str = typer.Option(None, "--study", help="Write only this study's report (its key, or the first 8+ characters)."),
    out: str = typer.Option(None, "--out", help="Where the reports go (default DEST/reports)."),
    studies: str = typer.Option("flagged", "--studies", help="Study reports to write: flagged (fracture or L1 <= 110 HU), all, none."),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, SeaweedFS...)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Population report, dashboard and per-study reports (HTML; PDF per study) from the tables."""
    _setup_logging(verbose)
    from reports.build import StudySelection, write_reports
    from vertfrac_core.errors import InputError

    if studies not in {s.value for s in StudySelection}:
        raise typer.BadParameter(f"--studies must be flagged, all or none; got {studies!r}")
    options = {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url else None
    try:
        summary = write_reports(dest, out, studies=studies, study=study, storage_options=options)
    except InputError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=2) from err
    typer.echo(summary.describe())
