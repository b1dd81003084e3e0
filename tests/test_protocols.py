"""The protocol registry is self-consistent: every name another stage asks a protocol about exists."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest

from hbench.config import TrainConfig
from hbench.errors import HBenchError
from hbench.protocols import (
    DEFAULT_KS,
    EXTRA_METRICS,
    PROTOCOLS,
    Candidates,
    ProtocolName,
    get_protocol,
)
from hbench.reports.names import metric_name
from hbench.reports.significance import direction


def test_the_protocol_type_lists_the_registry_in_its_order() -> None:
    # The order matters too: help strings and error messages enumerate the registry.
    assert get_args(ProtocolName) == tuple(PROTOCOLS)
    assert all(spec.name == name for name, spec in PROTOCOLS.items())


def test_runs_default_to_the_cut_offs_the_protocols_select_and_report_on() -> None:
    ks = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "ks")
    assert tuple(ks) == DEFAULT_KS


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_selection_and_report_metrics_are_among_those_computed(name: str) -> None:
    spec = PROTOCOLS[name]
    produced = spec.produced_metrics(DEFAULT_KS)
    assert len(produced) == len(set(produced)), "a metric is computed twice"
    assert spec.selection_metric in produced
    assert spec.report_metrics and set(spec.report_metrics) <= set(produced)
    assert spec.candidates in get_args(Candidates)
    for extra in spec.extra_metrics:
        assert extra.candidates in get_args(Candidates)
        assert EXTRA_METRICS[extra.name] == extra, "two protocols define an extra metric of one name differently"


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_reports_can_spell_and_orient_every_metric_computed(name: str) -> None:
    for metric in PROTOCOLS[name].produced_metrics(DEFAULT_KS):
        assert direction(metric) in (1, -1)
        assert metric_name(metric) != metric, f"{metric} has no typeset name"


def test_an_unknown_protocol_names_the_registered_ones() -> None:
    with pytest.raises(HBenchError, match="choose one of loo, full, auc"):
        get_protocol("ndcg")
