"""The documentation site: it builds with `mkdocs build --strict` (a broken link, a warning from a
docstring or a command without a page fails), every command has its page, every object of the API
reference has a docstring, and the README is a short entry point whose links into docs/ resolve."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

DOCS = REPO / "docs"


def _build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # NO_MKDOCS_2_WARNING: Material prints a banner about its successor on every build (stderr noise only).
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, capture_output=True, text=True, env=env, timeout=600)


def _cli_commands() -> dict[str, list[str]]:
    """Every top-level command of the Typer app, with its sub-commands (a group's), as `--help` lists them."""
    import typer.main

    from hbench.cli import app

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="hbench")
    commands = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub_ctx = command.context_class(command, info_name=name, parent=ctx)
        commands[name] = list(command.list_commands(sub_ctx)) if hasattr(command, "list_commands") else []
    return commands


def test_site_builds_strict_and_embeds_generated_reference(tmp_path: Path) -> None:
    done = _build(REPO, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    # The generated parts are there: `hbench train --help`'s options, each model's options, the datasets.
    train = (tmp_path / "site" / "commands" / "train" / "index.html").read_text(encoding="utf-8")
    assert "--eval-every" in train and "Validate every N epochs." in train
    models = (tmp_path / "site" / "models" / "index.html").read_text(encoding="utf-8")
    assert "curvature parameter c &gt; 0 of the ball" in models  # hyperml's --c, from option_help
    assert "0.127: <strong>met</strong> (105 %)" in models  # cml's fidelity row, from the reference table
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "load_dataset" in api and "SignificanceSettings" in api


def test_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The strict settings are what catch it: a copy of the site with one page linking to a missing page."""
    root = tmp_path / "repo"
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    for included in ("CONTRIBUTING.md", "results/README.md", "results/reference/amazon-cd-table/README.md"):
        (root / included).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / included, root / included)
    (root / "hbench").symlink_to(REPO / "hbench")  # mkdocstrings reads the package from the root
    # The model zoo's generated sections import torch (seconds); link checking does not depend on them.
    zoo = root / "docs" / "models.md"
    zoo.write_text(zoo.read_text(encoding="utf-8").replace("<!-- hbench:models -->", ""), encoding="utf-8")
    page = root / "docs" / "index.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [the lost page](no-such-page.md).\n", encoding="utf-8")
    done = _build(root, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr and "Aborted" in done.stdout + done.stderr, done.stdout + done.stderr


def test_every_command_has_a_page_that_embeds_its_help() -> None:
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    commands = _cli_commands()
    assert {"train", "table", "demo", "plot"} <= set(commands)
    for name, subcommands in commands.items():
        page = DOCS / "commands" / f"{name}.md"
        assert page.is_file(), f"`hbench {name}` has no page: add docs/commands/{name}.md"
        assert f"commands/{name}.md" in nav, f"docs/commands/{name}.md is not in mkdocs.yml's nav"
        text = page.read_text(encoding="utf-8")
        for path in [name] + [f"{name} {sub}" for sub in subcommands]:
            assert f"<!-- hbench:help {path} -->" in text, f"docs/commands/{name}.md does not embed `hbench {path} --help`"


def _documented_objects() -> list[str]:
    """The dotted paths docs/api.md hands to mkdocstrings (`::: path`)."""
    return re.findall(r"^::: ([\w.]+)", (DOCS / "api.md").read_text(encoding="utf-8"), re.M)


def _own_doc(obj: object) -> str | None:
    """The object's own docstring, or None: not inherited, and not the signature dataclasses write for a
    class without one."""
    doc = obj.__doc__ if isinstance(obj, type) else inspect.getdoc(obj)
    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
        return None
    return doc.strip() if doc else None


def _members(obj: object) -> list[tuple[str, object]]:
    """The public functions, classes, methods and properties an API page shows for `obj`."""
    found: list[tuple[str, object]] = []
    if inspect.ismodule(obj):
        for name, member in vars(obj).items():
            if not name.startswith("_") and (inspect.isfunction(member) or inspect.isclass(member)) \
                    and member.__module__ == obj.__name__:
                found.append((name, member))
                found += [(f"{name}.{sub}", m) for sub, m in _members(member)] if inspect.isclass(member) else []
    elif inspect.isclass(obj):
        for name, member in vars(obj).items():
            if name.startswith("_"):
                continue
            if isinstance(member, property):
                member = member.fget
            elif isinstance(member, functools.cached_property):
                member = member.func
            elif isinstance(member, (classmethod, staticmethod)):
                member = member.__func__
            if inspect.isfunction(member) or inspect.isclass(member):
                found.append((name, member))
    return found


def test_every_public_object_of_the_api_reference_has_a_docstring() -> None:
    paths = _documented_objects()
    assert "hbench.api" in paths and "hbench.datasets.load.load_dataset" in paths
    missing = []
    for path in paths:
        module_name, _, attribute = path.rpartition(".")
        try:
            obj = importlib.import_module(path)
        except ModuleNotFoundError:
            obj = getattr(importlib.import_module(module_name), attribute)
        if not _own_doc(obj):
            missing.append(path)
        missing += [f"{path}.{name}" for name, member in _members(obj) if not _own_doc(member)]
    assert not missing, f"public objects of the API reference without a docstring: {missing}"


def test_missing_docstring_check_catches_a_bare_method_and_a_bare_dataclass() -> None:
    @dataclasses.dataclass
    class Bare:
        x: int

        @property
        def twice(self) -> int:
            return 2 * self.x

    assert _own_doc(Bare) is None
    assert [name for name, member in _members(Bare) if not _own_doc(member)] == ["twice"]


def test_readme_is_a_short_entry_point_whose_docs_links_resolve() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 5000
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert blocks[0].strip() == ("python3 -m venv .venv && . .venv/bin/activate && pip install --extra-index-url "
                                 "https://download.pytorch.org/whl/cpu . && hbench demo")
    assert blocks[1].strip() == ". .venv/bin/activate && pip install -e '.[test]' && python -m pytest -q"
    links = re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert (REPO / link).exists(), f"README links to {link}, which does not exist"
