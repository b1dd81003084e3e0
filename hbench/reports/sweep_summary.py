"""The summary of a sweep directory: selection on validation (`hbench.experiments.selection`) with the
test metrics reports show per protocol, and `sweep-summary.md`, per configuration the mean ± std over seeds,
the selected ones and why.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from hbench.atomic import write_text
from hbench.experiments.selection import SweepReport, configuration_label, select_sweep

SUMMARY_MD = "sweep-summary.md"


def summarise_sweep(out: Path) -> SweepReport:
    """Write the summary files of a sweep directory from its run directories, and return them."""
    report = select_sweep(out)
    write_text(out / SUMMARY_MD, sweep_markdown(report))
    return report


def sweep_markdown(report: SweepReport) -> str:
    """The text of sweep-summary.md: a table per dataset and protocol, then the selections."""
    cells, configs, selections = report.cells, report.configurations, report.selections
    status = cells["status"].value_counts().to_dict()
    lines = [f"# Sweep {report.spec.get('name', '')}", "",
             f"{len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())) + ".", ""]
    if configs.empty:
        return "\n".join(lines) + "\n"
    for (dataset, protocol), frame in configs.groupby(["dataset", "protocol"], sort=False, dropna=False):
        test_columns = [c for c in frame.columns if c.startswith("test/") and not c.endswith(" std")]
        metric = frame["metric"].dropna().iloc[0] if frame["metric"].notna().any() else "metric"
        token_sets = [set(str(s).split()) - {"defaults"} for s in frame["settings"] if s]  # "": not run yet
        swept_keys = {token.split("=")[0] for swept in frame["swept"] for token in str(swept).split()}
        shared = {t for t in (set.intersection(*token_sets) if token_sets else set())
                  if t.split("=")[0] not in swept_keys}
        table = [_configuration_line(row, test_columns) for _, row in frame.iterrows()]
        headers = ["model", "configuration", "seeds done", f"valid {metric}", *test_columns]
        lines += [f"## {dataset} — {protocol}", "", tabulate(table, headers=headers, tablefmt="github"), ""]
        if shared:
            lines += [f"All configurations (besides model defaults): {' '.join(sorted(shared))}.", ""]
    if selections:
        lines += ["## Selected on validation", ""]
        for s in selections:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in s.test.items())
            chosen = "" if s.settings == "—" else f"{s.settings} — "
            lines.append(f"- **{s.dataset} {s.model}**: {chosen}{s.reason}. Test: {shown}.")
        lines.append("")
    elif not report.spec.get("select", True):
        lines += ["Every configuration is reported (no selection: an ablation).", ""]
    else:
        lines += ["Nothing selected: no configuration has a validation result (see the seeds done).", ""]
    return "\n".join(lines) + "\n"


def _configuration_line(row: pd.Series, test_columns: list[str]) -> list[str]:
    seeds = (f"{row['completed']}/{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
             + (f" ({row['failed']} failed)" if row["failed"] else ""))
    return [row["model"] + (" ✓" if row["selected"] else ""), configuration_label(row), seeds,
            _mean_std(row["valid_mean"], row["valid_std"]), *(_mean_std(row[c], row[f"{c} std"]) for c in test_columns)]


def _mean_std(mean: float, std: float) -> str:
    """`mean ± std` as the tables write it; the mean alone for one seed, `—` for none."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    return f"{mean:.4f}" + ("" if std is None or math.isnan(std) else f" ± {std:.4f}")
