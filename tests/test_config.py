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
