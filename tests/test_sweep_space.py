"""Space files, samplers and pruners: every mistake names the parameter and the fix."""

from __future__ import annotations

import nbformat
import pytest

from offload.errors import OffloadError, UsageError
from offload.store import Store
from offload.store.layout import JOBS, SWEEPS
from offload.sweeps.api import create_sweep
from offload.sweeps.space import (
    SpaceError,
    load_enqueue,
    load_space,
    make_pruner,
    make_sampler,
    parse_objectives,
)

optuna = pytest.importorskip("optuna")

GOOD = """
lr:        {type: float, low: 1e-5, high: 1.0e-1, log: true}
layers:    {type: int, low: 1, high: 6}
optimizer: {type: categorical, choices: [adam, sgd]}
batch_size: 256          # fixed
"""


def test_issue_example_parses(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text(GOOD)
    space = load_space(f)
    assert set(space.searched) == {"lr", "layers", "optimizer"}
    assert space.fixed == {"batch_size": 256}
    assert space.params["lr"].low == 1e-5  # YAML 1.1 reads 1e-5 as a string: still accepted
    study = optuna.create_study(sampler=make_sampler("tpe", seed=1, space=space))
    for _ in range(5):
        trial = study.ask()
        values = space.suggest(trial)
        assert 1e-5 <= values["lr"] <= 0.1
        assert values["layers"] in range(1, 7)
        assert values["optimizer"] in ("adam", "sgd")
        assert values["batch_size"] == 256
        study.tell(trial, 1.0)


@pytest.mark.parametrize(
    "text, words",
    [
        ("lr: {type: float, low: 0.1, high: 0.1}", ["'lr'", "low", "below high"]),
        ("lr: {type: float, low: 1, high: 0.1}", ["'lr'", "below high", "swap"]),
        ("lr: {type: float, low: 0, high: 1, log: true}", ["'lr'", "low > 0", "drop log"]),
        ("lr: {type: float, lo: 0, high: 1}", ["'lr'", "unknown key 'lo'", "did you mean 'low'"]),
        ("lr: {type: flaot, low: 0, high: 1}", ["'lr'", "unknown type", "did you mean 'float'"]),
        ("lr: {low: 0, high: 1}", ["'lr'", "missing type"]),
        ("n: {type: int, low: 1.5, high: 4}", ["'n'", "whole number"]),
        ("opt: [adam, sgd]", ["'opt'", "categorical", "fixed"]),
        ("opt: {type: categorical, choices: []}", ["'opt'", "non-empty"]),
        ("opt: {type: categorical, choices: [a, a]}", ["'opt'", "duplicates"]),
        ("lr: {type: float, low: 0.1, high: 1, log: true, step: 0.1}", ["'lr'", "step and log"]),
        ("lr: {type: float, low: x, high: 1}", ["'lr'", "number"]),
        ("lr: {type: float, high: 1}", ["'lr'", "needs low"]),
        ("batch: 256", ["nothing to search"]),
        ("lr: {type: float, low: 0, high: [1", ["not valid YAML"]),
        ("- a\n- b", ["non-empty mapping"]),
        ("1x: {type: int, low: 1, high: 2}", ["identifier"]),
    ],
)
def test_invalid_spaces_are_explained(tmp_path, text, words):
    f = tmp_path / "space.yaml"
    f.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(f)
    msg = str(info.value)
    assert str(f) in msg or "nothing" in msg or "YAML" in msg or "mapping" in msg
    for w in words:
        assert w in msg, msg
    assert info.value.exit_code == 2  # a usage error for the CLI


def test_missing_space_file(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "nope.yaml")


def test_dict_space_and_int_step_log():
    space = load_space({"n": {"type": "int", "low": 1, "high": 64, "log": True}, "w": {"value": [1, 2]}})
    assert space.fixed == {"w": [1, 2]}
    study = optuna.create_study(sampler=make_sampler("random", seed=0, space=space))
    t = study.ask()
    assert 1 <= space.suggest(t)["n"] <= 64


def test_grid_sampler_needs_finite_values():
    space = load_space({"x": {"type": "float", "low": 0, "high": 1}})
    with pytest.raises(SpaceError, match="step"):
        make_sampler("grid", seed=0, space=space)
    space = load_space({"x": {"type": "float", "low": 0, "high": 1, "step": 0.25}, "o": {"choices": ["a", "b"]}})
    assert space.grid_size() == 10
    assert isinstance(make_sampler("grid", seed=0, space=space), optuna.samplers.GridSampler)


def test_samplers_and_pruners():
    space = load_space({"x": {"type": "float", "low": -1, "high": 1}})
    assert isinstance(make_sampler("cmaes", seed=0, space=space), optuna.samplers.CmaEsSampler)
    tpe = make_sampler("tpe:n_startup_trials=3", seed=0, space=space)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    with pytest.raises(UsageError, match="did you mean 'tpe'"):
        make_sampler("tep", seed=0, space=space)
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("percentile:percentile=50"), optuna.pruners.PercentilePruner)
    assert isinstance(make_pruner("hyperband"), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("successive-halving"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    with pytest.raises(UsageError, match="unknown pruner"):
        make_pruner("mediam")
    with pytest.raises(UsageError, match="several objectives"):
        make_pruner("median", n_objectives=2)
    with pytest.raises(UsageError, match="one objective"):
        make_sampler("cmaes", seed=0, space=space, n_objectives=2)


def test_objectives():
    assert parse_objectives("acc", "maximize") == (["acc"], ["maximize"])
    assert parse_objectives("acc,lat", "max,min") == (["acc", "lat"], ["maximize", "minimize"])
    assert parse_objectives(["a", "b"], "minimize") == (["a", "b"], ["minimize", "minimize"])
    with pytest.raises(UsageError, match="directions"):
        parse_objectives("a,b,c", "max,min")
    with pytest.raises(UsageError, match="unknown direction"):
        parse_objectives("a", "up")


def test_enqueue_points_checked(tmp_path):
    space = load_space(GOOD)
    f = tmp_path / "good.yaml"
    f.write_text("- {lr: 0.01, layers: 3, optimizer: adam}\n")
    assert load_enqueue(f, space) == [{"lr": 0.01, "layers": 3, "optimizer": "adam"}]
    with pytest.raises(SpaceError, match="outside"):
        load_enqueue({"lr": 1.0, "layers": 3, "optimizer": "adam"}, space)
    with pytest.raises(SpaceError, match="did you mean 'layers'"):
        load_enqueue({"lr": 0.01, "layer": 3, "optimizer": "adam"}, space)


# Errors name the REST body field they are about (the panel marks that field) -------------------
@pytest.mark.parametrize(
    "space, field",
    [
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "space.lr"),
        ({"lr": {"type": "float", "low": "x", "high": 1}}, "space.lr"),
        ({"n": {"type": "int", "low": 1.5, "high": 4}}, "space.n"),
        ({"opt": {"type": "categorical", "choices": []}}, "space.opt"),
        ({"1x": {"type": "int", "low": 1, "high": 2}}, "space.1x"),
        ({"batch": 256}, "space"),
        ({}, "space"),
    ],
)
def test_space_errors_carry_their_field(space, field):
    with pytest.raises(SpaceError) as info:
        load_space(space)
    assert info.value.field == field


def test_option_errors_carry_their_field():
    space = load_space({"x": {"type": "float", "low": 0, "high": 1}})
    cases = [
        (lambda: make_sampler("grid", seed=0, space=space), "space.x"),
        (lambda: make_sampler("bayes", seed=0, space=space), "sampler"),
        (lambda: make_sampler("tpe:n_startup_trials", seed=0, space=space), "sampler"),
        (lambda: make_pruner("mediam"), "pruner"),
        (lambda: make_pruner("median", n_objectives=2), "pruner"),
        (lambda: parse_objectives("", "maximize"), "objective"),
        (lambda: parse_objectives("a,a", "maximize"), "objective"),
        (lambda: parse_objectives("a", "up"), "direction"),
        (lambda: parse_objectives("a,b,c", "max,min"), "direction"),
        (lambda: load_enqueue({"x": 2.0}, space), "enqueue"),
        (lambda: load_enqueue({"y": 0.5}, space), "enqueue"),
        (lambda: load_enqueue([1, 2], space), "enqueue"),
    ]
    for call, field in cases:
        with pytest.raises(UsageError) as info:
            call()
        assert info.value.field == field, (field, info.value)


def test_sweep_input_errors_carry_their_field(tmp_path, monkeypatch):
    """What the REST handler turns into a 400 naming the field, checked before any job."""
    monkeypatch.setenv("OFFLOAD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OFFLOAD_STORE", raising=False)

    def notebook(name: str, params: str | None) -> str:
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(params or "x = 0")
        if params is not None:
            cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell]
        nbformat.write(nb, tmp_path / name)
        return str(tmp_path / name)

    nb = notebook("nb.ipynb", "lr = 0.1\n")
    good = dict(
        space={"lr": {"type": "float", "low": 0.01, "high": 1}}, objective="acc", direction="maximize",
        trials=2, parallel=1, per_gpu=1, sampler="tpe", seed=None, pruner=None, storage=None,
        study_name=None, max_failures=None, enqueue=None, backend=None, gpu=None, spot=False, machine=None,
        max_runtime=None, env=None, data=None, backend_options=None, retries=1, store=Store(),
    )
    cases = [
        ({"space": {"lrr": {"type": "float", "low": 0.1, "high": 1}}}, "space.lrr"),
        ({"space": {"lr": {"type": "float", "low": 1, "high": 0.1}}}, "space.lr"),
        ({"trials": 0}, "trials"),
        ({"parallel": 0}, "parallel"),
        ({"per_gpu": "2"}, "per_gpu"),
        ({"seed": "x"}, "seed"),
        ({"max_failures": 0}, "max_failures"),
        ({"objective": " "}, "objective"),
        ({"direction": "up"}, "direction"),
        ({"sampler": "bayes"}, "sampler"),
        ({"pruner": "mediam"}, "pruner"),
        ({"backend": "no-such-backend"}, "backend"),
        ({"max_runtime": "forever"}, "max_runtime"),
        ({"enqueue": [{"lr": 5.0}]}, "enqueue"),
        ({"storage": f"sqlite:///{tmp_path}/no-such-dir/s.db"}, "storage"),
    ]
    for over, field in cases:
        with pytest.raises(OffloadError) as info:
            create_sweep(nb, **{**good, **over})
        assert info.value.field == field, (over, info.value)
    with pytest.raises(OffloadError) as info:  # the body names the notebook `path`
        create_sweep(notebook("plain.ipynb", None), **good)
    assert info.value.field == "path" and "parameters cell" in info.value.message
    assert not Store().list_dirs(JOBS) and not Store().list_dirs(SWEEPS)
