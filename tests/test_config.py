"""Typed settings: flags and spec values become the declared type, or one error naming the setting."""

from __future__ import annotations

from typing import Literal

import pytest

from hbench.config import TrainConfig, coerce_setting
from hbench.errors import HBenchError


@pytest.mark.parametrize(("value", "hint", "expected"), [
    ("2", float, 2.0),
    (2, float, 2.0),
    (" 0.5 ", float, 0.5),
    ("1e-3", float, 0.001),
    ("7", int, 7),
    ("no", bool, False),
    ("TRUE", bool, True),
    (False, bool, False),
    ("ball", Literal["ball", "tangent"], "ball"),
    (None, float | None, None),
    ("0.01", float | None, 0.01),
    ("10,20", tuple[int, ...], (10, 20)),
    ([5, "50"], tuple[int, ...], (5, 50)),
    ("loo", str, "loo"),
])
def test_values_become_the_declared_type(value, hint, expected) -> None:
    result = coerce_setting(value, hint, "--x")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("value", "hint", "message"), [
    ("big", float, "--x expects float, got 'big'"),
    (True, float, "--x expects float, got True"),  # bool is an int subclass, and still not a rate
    (2.5, int, "--x expects int, got 2.5"),
    (1, bool, "--x expects bool, got 1"),
    ("maybe", bool, "--x expects bool, got 'maybe'"),
    ("disk", Literal["ball", "tangent"], "--x expects ball|tangent, got 'disk'"),
    (None, float, "--x expects float, got None"),
    ([], tuple[int, ...], "--x expects comma-separated ints, got []"),
    (3, str, "--x expects str, got 3"),
])
def test_values_that_do_not_fit_are_one_error_naming_the_setting(value, hint, message) -> None:
    with pytest.raises(HBenchError) as error:
        coerce_setting(value, hint, "--x")
    assert str(error.value) == message


def test_equal_settings_from_different_sources_have_one_identity() -> None:
    from_flags = TrainConfig(dataset="d", dim="32", lr="0.001", ks="10,20", epochs="5")  # type: ignore[arg-type]
    from_spec = TrainConfig(dataset="d", dim=32, lr=1e-3, ks=[10, 20], epochs=5)  # type: ignore[arg-type]
    assert from_flags == from_spec and from_flags.identity() == from_spec.identity()
    with pytest.raises(HBenchError, match="epochs expects int, got 'five'"):
        TrainConfig(dataset="d", epochs="five")  # type: ignore[arg-type]


def test_an_option_added_later_keeps_earlier_runs_identity_at_its_default(tiny_dataset, tmp_path) -> None:
    """CML's `negative` and `rank_weight` came after CML runs were recorded: a run at their defaults hashes as
    the identity written out by hand without them (an earlier run's), and one that sets either does not."""
    from hbench.atomic import sha256_json
    from hbench.training.trainer import plan_run

    config = TrainConfig(dataset=str(tiny_dataset.path), epochs=1, dim=4)
    planned = plan_run("cml", config, {}, out=tmp_path)
    earlier_options = {"init_std": 0.1, "margin": 1.0, "max_norm": 1.0}  # CML's options before the two were added
    assert planned.run.model_options == {**earlier_options, "negative": "each", "rank_weight": False}
    by_hand = {"model": "cml", "model_options": earlier_options, "train": planned.run.train,
               "split_hash": tiny_dataset.split_hash, "features": None, "protocol": planned.run.protocol,
               "metric": planned.run.metric, "lr": planned.run.lr}
    assert planned.run.config_hash == sha256_json(by_hand)
    closest = plan_run("cml", config, {"negative": "closest"}, out=tmp_path)
    assert closest.run.identity_exempt == ("rank_weight",)
    assert closest.run.config_hash == sha256_json(
        {**by_hand, "model_options": {**earlier_options, "negative": "closest"}})
