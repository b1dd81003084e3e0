"""`hbench recommend RUN_DIR ...` and `hbench export RUN_DIR ...`: what a trained run gives back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hbench.cli.common import Command, Home, Quiet, feedback
from hbench.errors import HBenchError

RunDir = Annotated[Path, typer.Argument(help="A run directory (holds config.json and checkpoint.pt).")]


def register(app: typer.Typer) -> None:
    app.command("recommend", cls=Command)(recommend)
    app.command("export", cls=Command)(export)


def recommend(
    run_dir: RunDir,
    user: Annotated[list[str] | None, typer.Option("--user", help="An original user id; repeatable.")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="File of user ids: one per line, or CSV/TSV/Parquet "
                                                                 "with a `user` column.", show_default=False)] = None,
    k: Annotated[int, typer.Option("--k", help="Items per user (fewer for a user with fewer unseen items).")] = 10,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write CSV (.csv) or Parquet (.parquet) "
                                                "instead of TSV on stdout (replacing the file).")] = None,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Top-K items per user with the dataset's original ids, the user's training items excluded."""
    from hbench.atomic import atomic_path, check_target, write_text
    from hbench.reports.export import read_user_ids
    from hbench.training.restore import restore_run

    # Everything the user typed is checked before the model loads.
    if (user is None) == (users is None):
        raise HBenchError("name the users with --user ID (repeatable) or --users FILE, one of the two")
    if k < 1:
        raise HBenchError(f"--k must be at least 1, got {k}")
    if output is not None:
        if output.suffix not in (".csv", ".parquet"):
            raise HBenchError(f"--output {output} must end in .csv or .parquet")
        check_target(output)
    wanted = list(user) if user else read_user_ids(users)  # type: ignore[arg-type]
    distinct = list(dict.fromkeys(wanted))
    fb = feedback(quiet)
    if len(distinct) < len(wanted):
        fb.warn(f"{len(wanted) - len(distinct)} repeated user id(s) dropped: each user is ranked once, in the order "
                "first given")
    ranked = restore_run(run_dir, home, feedback=fb).recommend(distinct, k)
    full = int((ranked.groupby("user", sort=False).size() >= k).sum())
    if full < len(distinct):
        fb.warn(f"{len(distinct) - full} of {len(distinct)} user(s) have fewer than {k} items they have not seen: "
                "their lists are shorter")
    if output is None:
        typer.echo(ranked.to_csv(sep="\t", index=False), nl=False)
    elif output.suffix == ".parquet":
        with atomic_path(output) as tmp:
            ranked.to_parquet(tmp, index=False)
    else:
        write_text(output, ranked.to_csv(index=False))


def export(
    run_dir: RunDir,
    to: Annotated[str, typer.Option("--to", help="ranx | trec | csv | parquet.")] = "ranx",
    k: Annotated[int | None, typer.Option(
        "--k", show_default=False,
        help="Items per user in the ranking. Default: every candidate of a sampled protocol (1 + the negatives for "
             "loo), so that ranx's MRR equals hbench's; 100 under full ranking.")] = None,
    embeddings: Annotated[bool, typer.Option("--embeddings", help="Also write user and item points (original ids).")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Directory (default: RUN_DIR/export); an "
                                                "earlier export there is replaced whole.", show_default=False)] = None,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """The run's test ranking (top-K per user) and qrels in a format ranx and trec_eval read; --embeddings too."""
    from hbench.reports.export import EXPORT_FORMATS, check_export_target, export_run
    from hbench.training.restore import restore_run

    # Everything the user typed is checked before the model loads.
    if to not in EXPORT_FORMATS:
        raise HBenchError(f"--to must be one of {', '.join(EXPORT_FORMATS)}, not {to!r}")
    if k is not None and k < 1:
        raise HBenchError(f"--k must be at least 1, got {k}")
    if output is not None:
        check_export_target(output)
    fb = feedback(quiet)
    files = export_run(restore_run(run_dir, home, feedback=fb), output or Path(run_dir) / "export", to, k=k,
                       embeddings=embeddings)
    for path in files:
        typer.echo(str(path))
