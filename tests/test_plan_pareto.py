"""Pareto fronts and SLO picks as properties over random rows, and the cost arithmetic."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from perfmodel.plan.grid import Point
from perfmodel.plan.pareto import dominates, pareto_front
from perfmodel.plan.search import Slo, _value, _with_cost, parallelisms, pick_best

KEYS = ("tok_s_per_gpu", "tok_s_per_user")
values = st.integers(1, 12).map(float)  # few distinct values, so ties are common
rows = st.lists(st.fixed_dictionaries({
    "tok_s_per_gpu": values, "tok_s_per_user": values, "ttft_s": values, "tpot_s": values,
    "gpus": st.sampled_from([1, 2, 4, 8])}), max_size=40)


@settings(max_examples=300, deadline=None)
@given(rows)
def test_front_is_exactly_the_undominated_rows(points):
    front = pareto_front(points, KEYS)
    kept = {id(r) for r in front}
    for row in front:  # nothing dominates a point on the front
        assert not any(dominates(other, row, KEYS) for other in points)
    for row in points:  # every dropped point is dominated by a point on the front
        if id(row) not in kept:
            assert any(dominates(f, row, KEYS) for f in front)
    assert len(front) == len(kept)  # each row at most once


@settings(max_examples=200, deadline=None)
@given(rows)
def test_minimised_cost_through_value(points):
    for i, row in enumerate(points):
        row["cost_per_mtok"] = 100.0 / row["tok_s_per_gpu"] + i % 3
    keys = ("cost_per_mtok", "tok_s_per_user")
    front = pareto_front(points, keys, _value)
    for row in points:
        cheaper_and_faster = [o for o in points if o["cost_per_mtok"] <= row["cost_per_mtok"]
                              and o["tok_s_per_user"] >= row["tok_s_per_user"]
                              and (o["cost_per_mtok"], o["tok_s_per_user"])
                              != (row["cost_per_mtok"], row["tok_s_per_user"])]
        assert (any(r is row for r in front)) == (not cheaper_and_faster)


def test_dominance_by_hand():
    a = {"tok_s_per_gpu": 2.0, "tok_s_per_user": 2.0}
    b = {"tok_s_per_gpu": 2.0, "tok_s_per_user": 1.0}
    assert dominates(a, b, KEYS) and not dominates(b, a, KEYS) and not dominates(a, a, KEYS)


@settings(max_examples=300, deadline=None)
@given(rows, st.one_of(st.none(), values), st.one_of(st.none(), values))
def test_best_meets_the_slo_and_nothing_meeting_it_beats_it(points, ttft, tpot):
    slo = Slo(ttft, tpot)
    best = pick_best(points, slo, by_cost=False)
    meeting = [r for r in points if (ttft is None or r["ttft_s"] <= ttft)
               and (tpot is None or r["tpot_s"] <= tpot)]
    assert (best is None) == (not meeting)
    if best is not None:
        assert slo.met(best)
        assert best["tok_s_per_gpu"] == max(r["tok_s_per_gpu"] for r in meeting)


@settings(max_examples=300, deadline=None)
@given(rows, st.one_of(st.none(), values), st.one_of(st.none(), values),
       st.sampled_from([0.0, 0.1, 0.5]))
def test_a_margin_keeps_that_headroom_and_never_beats_the_best(points, ttft, tpot, margin):
    slo = Slo(ttft, tpot)
    best, safe = (pick_best(points, s, by_cost=False) for s in (slo, slo.tightened(margin)))
    if safe is not None:
        assert slo.met(safe) and best is not None
        assert all(room is None or room >= margin - 1e-12
                   for room in slo.headroom(safe).values())
        assert safe["tok_s_per_gpu"] <= best["tok_s_per_gpu"]
    if margin == 0.0:
        assert safe is best


def test_headroom_by_hand():
    room = Slo(0.5, 0.020).headroom({"ttft_s": 0.4, "tpot_s": 0.016})
    assert room["ttft"] == 0.25 and abs(room["tpot"] - 0.25) < 1e-12
    assert Slo(tpot_s=0.02).headroom({"ttft_s": 0.4, "tpot_s": 0.02}) == {"ttft": None,
                                                                          "tpot": 0.0}


def test_slo_none_metrics_fail_a_target():
    assert not Slo(tpot_s=0.05).met({"ttft_s": 0.1, "tpot_s": None})
    assert Slo(ttft_s=0.5).met({"ttft_s": 0.1, "tpot_s": None})


def test_cost_per_million_tokens():
    # $3.60 per GPU-hour buys 3.6 M output tokens at 1000 tokens/s per GPU: $1 per million
    point = Point("m", "g", load=4)
    row = _with_cost({"tok_s_per_gpu": 1000.0}, point, {"g": 3.6})
    assert abs(row["cost_per_mtok"] - 1.0) < 1e-12
    assert _with_cost({"tok_s_per_gpu": 1000.0}, point, {})["cost_per_mtok"] is None


def test_parallelisms():
    assert parallelisms(8, moe=False) == [(1, 1), (2, 1), (4, 1), (8, 1)]
    assert parallelisms(6, moe=False) == [(1, 1), (2, 1), (4, 1)]
    assert parallelisms(4, moe=True) == [(1, 1), (2, 1), (4, 1), (2, 2), (4, 4)]
    assert parallelisms(8, moe=False, tps=[2, 16]) == [(2, 1)]
