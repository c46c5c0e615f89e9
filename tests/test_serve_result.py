"""serve's typed result (serve/result.py): the --json document is its to_dict(), read back by
from_dict() to an equal record; it is frozen to the leaves; its blocks appear exactly when their
feature is on; its figures agree with each other; plan's serve row is the flat row the document
gave before the result was typed; the step-cost cache stays within its bound."""

from __future__ import annotations

import dataclasses
import json

import pytest

from perfmodel.plan.evaluate import _serve_row
from perfmodel.plan.grid import SERVE, Point
from perfmodel.serve import run_serve
from perfmodel.serve.result import Distribution, ServeResult, Workload

MODEL, GPU = "meta-llama/Llama-3.1-8B", "h200-measured"
SMALL = {"gpu": GPU, "isl": 256, "osl": 16, "num_requests": 12}
BLOCKS = ("disagg", "goodput", "speculative", "prefix_cache", "fleet")
RUNS = {  # each option that adds a block, and the plain run
    "plain": {"concurrency": 4},
    "slo": {"request_rate": 8.0, "slo": {None: {"ttft_s": 0.2, "tpot_s": 0.02}}},
    "shapes": {"request_rate": 8.0, "burstiness": 0.5, "range_ratio": 0.5, "warmup": 2},
    "fleet": {"concurrency": 4, "replicas": 2, "router": "least-loaded"},
    "disagg": {"concurrency": 4, "disagg": "1x1:1x1"},
    "speculative": {"concurrency": 4, "speculative": "ngram", "spec_tokens": 3,
                    "acceptance": 2.0},
    "prefix": {"concurrency": 4, "prefix_len": 128, "num_prefixes": 2},
}
WANT = {"plain": (), "slo": ("goodput",), "shapes": (), "fleet": ("fleet",),
        "disagg": ("disagg",), "speculative": ("speculative",), "prefix": ("prefix_cache",)}


@pytest.fixture(scope="module")
def reports():
    return {name: run_serve(MODEL, **{**SMALL, **kw}) for name, kw in RUNS.items()}


@pytest.mark.parametrize("name", RUNS)
def test_document_round_trips(reports, name):
    result = reports[name].result
    doc = result.to_dict()
    assert ServeResult.from_dict(doc) == result
    assert ServeResult.from_dict(json.loads(json.dumps(doc))) == result
    assert reports[name].metrics == doc  # the transition property: the same document


@pytest.mark.parametrize("name", RUNS)
def test_blocks_present_exactly_when_their_feature_is_on(reports, name):
    result, doc = reports[name].result, reports[name].result.to_dict()
    assert {b for b in BLOCKS if getattr(result, b) is not None} == set(WANT[name])
    assert {b for b in BLOCKS if b in doc} == set(WANT[name])
    head = ["model", "gpu", "engine", "precision", "parallel", "workload", "requests", "ttft_s",
            "tpot_s", "itl_s", "e2e_s", "limit", "throughput", "duration_s", "steps",
            "kv_cache", "preemptions"]
    assert list(doc)[:len(head)] == head  # docs/json.md's order
    assert list(doc)[-1] == (WANT[name] or ("estimate_note",))[0] or name == "disagg"


def test_workload_options_keep_their_place(reports):
    w = reports["shapes"].result.workload
    assert w.options["burstiness"] == 0.5 and w.options["lengths"]["range_ratio"] == 0.5
    assert list(w.to_dict())[-2:] == ["burstiness", "lengths"]
    assert reports["prefix"].result.workload.options["prefix_len"] == 128
    assert reports["plain"].result.workload.to_dict() == {
        "concurrency": 4, "request_rate": None, "num_requests": 12, "warmup": 0,
        "lock_step": False, "isl": 256, "osl": 16}


def test_frozen_to_the_leaves(reports):
    result = reports["slo"].result
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.requests = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.ttft_s.mean = 0.0
    with pytest.raises(TypeError):
        result.goodput.classes["default"] = None
    with pytest.raises(TypeError):
        reports["shapes"].result.workload.options["lengths"]["dist"] = "fixed"
    assert isinstance(reports["fleet"].result.fleet.per_replica, tuple)
    doc = result.to_dict()  # a copy: changing it leaves the result alone
    doc["ttft_s"]["mean"] = -1.0
    assert result.ttft_s.mean > 0 and result.to_dict()["ttft_s"]["mean"] > 0


def test_unknown_keys_are_refused():
    with pytest.raises(TypeError, match="no field 'p95'"):
        Distribution.from_dict({"mean": 1.0, "median": 1.0, "p90": 1.0, "p99": 1.0,
                                "p95": 1.0})
    plain = {"concurrency": 1, "request_rate": None, "num_requests": 1, "warmup": 0,
             "lock_step": False, "isl": 1, "osl": 1}
    assert Workload.from_dict({**plain, "burstiness": None}).options == {"burstiness": None}


def test_the_figures_agree(reports):
    for name, report in reports.items():
        r = report.result
        kv = r.kv_cache
        assert 0 < kv.peak_blocks_used <= kv.blocks and kv.tokens == kv.blocks * kv.block_size
        assert kv.peak_fraction == pytest.approx(kv.peak_blocks_used / kv.blocks)
        assert r.duration_s > 0 and r.steps > 0
        if name not in ("shapes",):  # warm-up requests count in throughput, not in `requests`
            assert r.throughput.requests_s * r.duration_s == pytest.approx(r.requests)
        assert r.ttft_s.mean >= r.limit.ttft_s.mean * (1 - 1e-9)
        assert r.tpot_s.mean >= r.limit.tpot_s.mean * (1 - 1e-9)
    fleet = reports["fleet"].result.fleet
    assert sum(p.requests for p in fleet.per_replica) == 12
    assert all(0 < p.peak_kv_blocks_used <= reports["fleet"].result.kv_cache.blocks
               for p in fleet.per_replica)
    assert reports["disagg"].result.disagg.prefill.kv_blocks > 0
    assert reports["speculative"].result.speculative.drafter_weights_bytes == 0  # ngram: none
    cache = reports["prefix"].result.prefix_cache
    assert 0 < cache.cached_tokens <= cache.prompt_tokens
    assert cache.prefill_tokens_saved <= cache.cached_tokens


def _old_serve_row(doc):
    """plan/evaluate.py's serve row as it was built from the --json dict before the result was
    typed (the reference the typed row must equal)."""
    row = {"basis": "serve", "precision_label": doc.get("precision")}
    for key, value in doc.items():
        if key in ("model", "gpu", "engine", "precision", "workload"):
            continue
        if key == "power_limit":
            row[key] = value and value["dtype"]
        elif isinstance(value, dict):
            row.update({f"{key}_{k}": v for k, v in value.items()
                        if not isinstance(v, (dict, list, tuple))})
        elif not isinstance(value, (list, tuple)):
            row[key] = value
    row.update(limit_ttft_s=doc["limit"]["ttft_s"]["mean"],
               limit_tpot_s=doc["limit"]["tpot_s"]["mean"], ttft_s=doc["ttft_s"]["mean"],
               tpot_s=doc["tpot_s"]["mean"], output_tok_s=doc["throughput"]["output_tok_s"],
               tok_s_per_gpu=doc["throughput"]["output_tok_s_per_gpu"],
               tok_s_per_user=doc["throughput"]["output_tok_s_per_user"])
    return row


@pytest.mark.parametrize("extra", [{}, {"replicas": 2, "router": "least-loaded"},
                                   {"disagg": "1x1:1x1"}])
def test_plan_row_unchanged(extra):
    point = Point(MODEL, GPU, SERVE, None, None, load=4, isl=256, osl=16, requests=12, **extra)
    row = _serve_row(point)
    doc = run_serve(MODEL, gpu=GPU, concurrency=4, isl=256, osl=16, num_requests=12,
                    **extra).metrics
    assert list(row.items()) == list(_old_serve_row(doc).items())


def test_step_cost_cache_is_bounded(monkeypatch):
    from perfmodel.serve import common

    monkeypatch.setattr(common, "_COSTS", type(common._COSTS)())
    monkeypatch.setattr(common, "_COSTS_SIZE", 2)
    for host in (0.001, 0.002, 0.003):  # the host overhead is part of the key
        run_serve(MODEL, host_overhead_s=host, concurrency=2, **SMALL)
        assert len(common._COSTS) <= 2
    assert [k[-3] for k in common._COSTS] == [0.002, 0.003]  # the oldest left
    first = run_serve(MODEL, host_overhead_s=0.001, concurrency=2, **SMALL)
    again = run_serve(MODEL, host_overhead_s=0.001, concurrency=2, **SMALL)
    assert first.result == again.result and first.step_cost is again.step_cost
