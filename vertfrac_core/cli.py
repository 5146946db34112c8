"""The `vertfrac` command line. Heavy imports live inside each command so `--help` is instant."""

from __future__ import annotations

import logging
from pathlib import Path

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
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write a synthetic archive of spine CT studies with ground truth beside it."""
    _setup_logging(verbose)
    from vertfrac_core.phantom.archive import ArchiveSettings, write_archive

    settings = ArchiveSettings(patients=patients, seed=seed, profile=profile)
    summary = write_archive(out, settings, truth_url=truth)
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
        str(archive), ArchiveSettings(patients=patients, seed=seed, profile="small"),
        truth_url=str(out / "truth"),
    )
    typer.echo(summary.describe())
    typer.echo(f"archive: {archive.resolve()}")
    typer.echo(f"ground truth: {(out / 'truth').resolve()}")


if __name__ == "__main__":  # pragma: no cover
    app()
