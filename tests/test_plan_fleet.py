"""plan --router: replicas traded against TP on a fixed GPU count (perfmodel/plan/search.py)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.plan.grid import SERVE, Point
from perfmodel.plan.search import deployments


def test_each_tp_fills_the_gpus_with_replicas():
    kept, skipped, _ = deployments("meta-llama/Llama-3.1-8B", ["h100-sxm"], [None], 8, 1024,
                                   128, SERVE, None, router="least-loaded")
    assert not skipped
    layouts = sorted((p.replicas, p.tp, p.gpus, held) for p, held in kept)
    assert [(r, tp, g) for r, tp, g, _ in layouts] == [(1, 8, 8), (2, 4, 8), (4, 2, 8),
                                                       (8, 1, 8)]
    # each fleet holds its replicas' requests together: 8 TP1 replicas hold 8 × one's
    one, _, _ = deployments("meta-llama/Llama-3.1-8B", ["h100-sxm"], [None], 1, 1024, 128,
                            SERVE, None)
    assert dict((p.tp, held) for p, held in kept if p.replicas == 8)[1] == 8 * one[0][1]


def test_a_fleet_point_reruns_with_its_router():
    point = Point("m", "h100-sxm", SERVE, tp=2, load=64, replicas=4, router="least-loaded")
    assert point.gpus == 8
    assert point.command().endswith("--replicas 4 --router least-loaded")
    assert "replicas" not in Point("m", "h100-sxm", SERVE).columns()


def test_plan_router_prints_the_fleet_command():
    got = CliRunner().invoke(app, ["plan", "meta-llama/Llama-3.1-8B", "--gpus", "h100-sxm",
                                   "--precisions", "bf16", "--max-gpus", "4", "--concurrency",
                                   "16,64", "--isl", "512", "--osl", "64", "--router",
                                   "round-robin", "--workers", "1", "--json"])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    fleets = {(p["replicas"], p["tp"]) for p in doc["pareto"] if "replicas" in p}
    assert fleets and all(r * tp == 4 for r, tp in fleets)
    best = doc["best"]
    assert best["gpus"] == 4
    assert ("--replicas" in best["command"]) == (best.get("replicas", 1) > 1)


def test_plan_router_needs_serve():
    got = CliRunner().invoke(app, ["plan", "meta-llama/Llama-3.1-8B", "--router", "random"])
    assert got.exit_code == 2 and got.output.startswith("error: --router takes")
