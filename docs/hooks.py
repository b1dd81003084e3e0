"""MkDocs hook: the reference parts of the documentation, generated at build time from the code.

A page asks for a generated block with an HTML comment (invisible when GitHub renders the page):

- `<!-- hbench:help [CMD [SUB]] -->`: usage, description and every argument and option of `hbench CMD [SUB]`,
  read from the Typer app, so a page cannot disagree with `--help`;
- `<!-- hbench:models -->`: one section per registered model (summary, geometry, default learning rate,
  ablation preset, every option with its type, default and help from `option_help`, and its fidelity row
  from the reference table when there is one);
- `<!-- hbench:datasets -->`: the dataset catalogue; `<!-- hbench:protocols -->`: the protocol registry.

Anything that cannot be generated (an unknown command or placeholder), and a registered command without a
page under `docs/commands/`, is logged as a warning, which `mkdocs build --strict` turns into a failed build.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.hbench")

REPO = Path(__file__).resolve().parent.parent
FIDELITY_TABLE = REPO / "results" / "reference" / "amazon-cd-table" / "README.md"
_PLACEHOLDER = re.compile(r"<!--\s*hbench:(\w+)((?:\s+[\w-]+)*)\s*-->")


def _cell(text: object) -> str:
    """A Markdown table cell: one line; pipes, brackets and angle brackets escaped (help texts hold
    `loo | full`, `user, item[, rating]` and `<name>`, which Markdown would read as columns, links or HTML)."""
    text = " ".join(str(text).split())
    for char, escaped in (("|", "\\|"), ("[", "\\["), ("]", "\\]"), ("<", "&lt;")):
        text = text.replace(char, escaped)
    return text


def _code(text: object) -> str:
    """A code span inside a Markdown table cell (only pipes need escaping there)."""
    return "`" + " ".join(str(text).split()).replace("|", "\\|") + "`"


def _cli() -> tuple[Any, Any]:
    """The root click group of `hbench` and its context (Typer vendors click as `typer._click`)."""
    import typer.main

    from hbench.cli import app

    group = typer.main.get_command(app)
    return group, group.context_class(group, info_name="hbench", **group.context_settings)


def registered_commands() -> list[str]:
    """The top-level commands of the Typer app, as `hbench --help` lists them."""
    group, ctx = _cli()
    return list(group.list_commands(ctx))


def command_reference(path: list[str]) -> str | None:
    """Markdown for `hbench PATH...`: usage, help text, sub-commands and a table of its parameters."""
    command, ctx = _cli()
    for name in path:
        sub = command.get_command(ctx, name) if hasattr(command, "get_command") else None
        if sub is None:
            return None
        command, ctx = sub, sub.context_class(sub, info_name=name, parent=ctx, **sub.context_settings)
    usage = " ".join(command.collect_usage_pieces(ctx))
    parts = ["```text", f"{ctx.command_path} {usage}", "```", "", (command.help or "").strip(), ""]
    if hasattr(command, "list_commands"):
        parts += ["| command | what it does |", "|---|---|"]
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            parts.append(f"| {_code(ctx.command_path + ' ' + name)} | {_cell(sub.get_short_help_str(200))} |")
        parts.append("")
    rows = [param.get_help_record(ctx) for param in command.get_params(ctx) if not getattr(param, "hidden", False)]
    rows = [row for row in rows if row is not None]
    if rows:
        parts += ["| argument or option | meaning |", "|---|---|"]
        parts += [f"| {_code(names)} | {_cell(meaning)} |" for names, meaning in rows]
    return "\n".join(parts) + "\n"


def fidelity_rows() -> tuple[str, str, dict[str, str]]:
    """The reference table's header, separator and rows by model name (the first word of the row label),
    each followed by the papers' row."""
    lines = [line for line in FIDELITY_TABLE.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    header, rows = lines[0], {}
    paper = next((line for line in lines if "(paper)" in line), None)
    for line in lines[1:]:
        label = line.strip("| ").split(" ")[0]
        rows.setdefault(label, line + ("\n" + paper if paper else ""))
    return header, "|---" * (header.count("|") - 1) + "|", rows


def models_reference() -> str:
    """One section per built-in model, in name order (plugins installed where the site is built are not
    hbench's to document)."""
    from hbench.cli.train import model_switches
    from hbench.models.registry import builtin_models, option_help

    header, separator, fidelity = fidelity_rows()
    source = FIDELITY_TABLE.relative_to(REPO).parent.as_posix()
    parts = []
    for name, cls in sorted(builtin_models().items()):
        switches = model_switches(name)
        facts = [f"geometry family: {cls.family}", "a proposed method" if cls.proposed else "a baseline"]
        if cls.trainable:
            facts.append(f"default learning rate {cls.default_lr:g}")
        else:
            facts.append("no training")
        ablations = getattr(cls, "ablations", None)
        parts += [f"## `{name}`", "", f"{cls.summary}. ({'; '.join(facts)}.)", ""]
        if ablations:
            variants = ", ".join(f"*{variant}*" for variant in ablations)
            parts += [f"`hbench ablate {name}` runs its preset: {variants}.", ""]
        if (twin := getattr(cls, "twin", None)) is not None:  # the same model in the other geometry (issue 34)
            flags = "".join(f" --{key.replace('_', '-')} {value}" for key, value in twin.options.items())
            parts += [f"Its twin, the same model in the other geometry: `{twin.model}{flags}`.", ""]
        options = option_help(cls)
        if options:
            parts += ["| option | type | default | meaning |", "|---|---|---|---|"]
            for flag, kind, default, meaning in options:
                if flag[2:] in switches:
                    flag, kind = f"{flag}/--no-{flag[2:]}", "flag"
                parts.append(f"| {_code(flag)} | {_cell(kind)} | {_code(default)} | {_cell(meaning)} |")
        else:
            parts.append("No options.")
        parts.append("")
        if name in fidelity:
            parts += [f"**Fidelity** (amazon-cd, HGCF's split; `{source}/`):", "", header, separator, fidelity[name], ""]
        else:
            parts += [f"**Fidelity**: no row in the reference table (`{source}/`) yet.", ""]
    return "\n".join(parts)


def datasets_reference() -> str:
    """The catalogue as `hbench datasets` lists it."""
    from hbench.datasets.catalog import list_datasets

    parts = ["| name | title | split | protocol | published users / items / interactions | download |",
             "|---|---|---|---|---|---|"]
    for spec in list_datasets():
        pub = spec.published
        published = f"{pub['users']:,} / {pub['items']:,} / {pub['interactions']:,}" if pub else ""
        download = ", ".join(f.size_hint for f in spec.raw_files if f.size_hint)
        parts.append(f"| `{spec.name}` | {_cell(spec.title)} | {spec.defaults.split} | {spec.defaults.protocol} "
                     f"| {published} | {_cell(download)} |")
    return "\n".join(parts) + "\n"


def protocols_reference() -> str:
    """The protocol registry (`hbench/protocols.py`) with the metrics each computes."""
    from hbench.protocols import DEFAULT_KS, PROTOCOLS

    parts = ["| protocol | candidates | metrics (K = cut-offs, default " + ", ".join(map(str, DEFAULT_KS)) + ") "
             "| selects on | tables show |", "|---|---|---|---|---|"]
    for spec in PROTOCOLS.values():
        metrics = [f"{m}@K" for m in spec.metrics_at_k] + list(spec.metrics) + [e.name for e in spec.extra_metrics]
        parts.append(f"| `{spec.name}` | {spec.candidates}: {_cell(spec.description)} | {', '.join(metrics)} "
                     f"| {spec.selection_metric} | {', '.join(spec.report_metrics)} |")
    return "\n".join(parts) + "\n"


def _generate(kind: str, args: list[str], where: str) -> str:
    if kind == "help":
        text = command_reference(args)
        if text is None:
            log.warning("%s: `hbench %s` is not a command of the Typer app", where, " ".join(args))
        return text or ""
    generators = {"models": models_reference, "datasets": datasets_reference, "protocols": protocols_reference}
    if kind not in generators or args:
        log.warning("%s: unknown placeholder hbench:%s %s", where, kind, " ".join(args))
        return ""
    return generators[kind]()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **_: Any) -> str:
    """Replace every placeholder on the page by its generated Markdown."""
    where = page.file.src_uri
    return _PLACEHOLDER.sub(lambda m: _generate(m.group(1), m.group(2).split(), where), markdown)


def on_files(files: Any, config: Any, **_: Any) -> Any:
    """Warn (a failed strict build) for a registered command whose page is missing or does not embed its help."""
    docs = Path(config["docs_dir"])
    for name in registered_commands():
        page = docs / "commands" / f"{name}.md"
        if not page.is_file():
            log.warning("command `hbench %s` has no page: add docs/commands/%s.md", name, name)
        elif f"<!-- hbench:help {name} -->" not in page.read_text(encoding="utf-8"):
            log.warning("docs/commands/%s.md does not embed `<!-- hbench:help %s -->`", name, name)
    return files
