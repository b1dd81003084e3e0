"""Model plugins (the `hbench.models` entry-point group) that are broken: named and skipped, never fatal to the
other models; an error only when the broken one is asked for (issue 33, audit P02, P07-P10).

The plugins are a real installed distribution: a `badplug-0.1.dist-info` folder with its METADATA and
entry_points.txt on sys.path, read by importlib.metadata exactly as pip's install would be.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hbench.cli import main
from hbench.models import registry

# A plugin package with one model of every kind: fine, raising in __init__, not a class, without traits.
_MODULE = '''
from hbench.models.bpr import BPRMF
from hbench.models.base import Recommender


class Fine(BPRMF):
    name = "fine"


class Raiser(BPRMF):
    name = "raiser"

    def __init__(self, context, options):
        raise RuntimeError("plugin exploded in __init__")


class NoTraits(Recommender):
    name = "notraits"
    family = "spherical"


NOT_A_CLASS = 42
'''

_ENTRY_POINTS = {
    "fine": "badplug_models:Fine",
    "raiser": "badplug_models:Raiser",
    "broken": "badplug_missing:Broken",  # the module was uninstalled: the audit's P07-P10
    "notamodel": "badplug_models:NOT_A_CLASS",
    "notraits": "badplug_models:NoTraits",
}


@pytest.fixture()
def badplug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The distribution `badplug` 0.1 installed on sys.path (and the registry's per-process cache emptied)."""
    site = tmp_path / "site"
    info = site / "badplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in _ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[hbench.models]\n{lines}\n")
    (site / "badplug_models.py").write_text(textwrap.dedent(_MODULE))
    monkeypatch.syspath_prepend(str(site))
    _forget_loaded_plugins()
    yield site
    _forget_loaded_plugins()
    monkeypatch.delitem(__import__("sys").modules, "badplug_models", raising=False)


def _forget_loaded_plugins() -> None:
    """Empty the registry's once-per-process records of loaded and warned-about entry points."""
    registry._load_plugin.cache_clear()
    registry._warn_skipped.cache_clear()


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_broken_plugins_are_skipped_with_one_line_each_naming_entry_point_distribution_and_cause(
        badplug, capsys) -> None:
    code, out, err = run(["models"], capsys)
    assert code == 0, err
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"bpr", "hyperml", "fine", "raiser"} <= listed  # the built-ins and the plugins that load
    assert not {"broken", "notamodel", "notraits"} & listed
    warnings = _warnings(err)
    assert len(warnings) == 3 and len(err.splitlines()) == 3, err
    broken = next(line for line in warnings if "'broken'" in line)
    assert "broken = badplug_missing:Broken" in broken and "badplug 0.1" in broken
    assert "ModuleNotFoundError: No module named 'badplug_missing'" in broken
    assert any("'notamodel'" in line and "not a Recommender subclass" in line for line in warnings)
    assert any("'notraits'" in line and "must set `family`" in line for line in warnings)


def test_the_warning_comes_once_per_process_not_per_lookup(badplug, capsys) -> None:
    for _ in range(3):  # a table looks models up once per run directory
        assert "fine" in registry.available_models()
        registry.model_traits()
        registry.get_model_class("bpr")
    assert len(_warnings(capsys.readouterr().err)) == 3  # one per broken entry point, not per call


@pytest.mark.parametrize(("args", "model", "cause"), [
    (["models", "broken"], "broken", "ModuleNotFoundError: No module named 'badplug_missing'"),
    (["train", "broken", "-d", "anything"], "broken", "ModuleNotFoundError: No module named 'badplug_missing'"),
    (["train", "notraits", "-d", "anything"], "notraits", "must set `family`"),
])
def test_asking_for_the_broken_plugin_is_a_user_error_naming_it(badplug, capsys, args, model, cause) -> None:
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert f"'{model}'" not in "".join(_warnings(err))  # the error says it: no warning about the same plugin
    last = err.splitlines()[-1]
    assert last.startswith(f"error: model '{model}' comes from a plugin that cannot be loaded (entry point "), last
    assert "badplug 0.1" in last and cause in last and "unexpected" not in err


def test_other_models_train_beside_a_broken_plugin(badplug, tiny_dataset, tmp_path: Path, capsys) -> None:
    code, out, err = run(["train", "bpr", "-d", str(tiny_dataset.path), "--epochs", "1", "--dim", "8",
                          "--out", str(tmp_path / "runs"), "--quiet"], capsys)
    assert code == 0, err
    assert "recall@20" in out
    assert any("'broken'" in line for line in _warnings(err))


def test_a_plugin_that_raises_while_built_is_named_in_the_error(badplug, tiny_dataset, tmp_path: Path,
                                                                 capsys) -> None:
    code, _, err = run(["train", "raiser", "-d", str(tiny_dataset.path), "--epochs", "1",
                        "--out", str(tmp_path / "runs"), "--quiet"], capsys)
    assert code == 1  # the plugin's bug, not the user's mistake
    last = err.splitlines()[-1]
    assert "model 'raiser' from entry point 'raiser = badplug_models:Raiser' of badplug 0.1" in last, last
    assert "RuntimeError" in last and "plugin exploded in __init__" in last
    # The model is built before the run folder is written: no half-started run is left behind (audit P02).
    assert not any((tmp_path / "runs").rglob("config.json"))


def test_a_builtin_model_that_raises_keeps_its_own_exception(monkeypatch, tiny_dataset) -> None:
    """Only plugins are wrapped: a built-in's failure is hbench's bug and keeps its type and traceback."""
    import torch

    from hbench.models.base import ModelContext
    from hbench.models.bpr import BPRMF

    def explode(self, context, options):
        raise ZeroDivisionError("built-in bug")

    monkeypatch.setattr(BPRMF, "__init__", explode)
    context = ModelContext(tiny_dataset.n_users, tiny_dataset.n_items, 4, tiny_dataset.train,
                           torch.Generator().manual_seed(0))
    with pytest.raises(ZeroDivisionError, match="built-in bug"):
        registry.create_model("bpr", context)
