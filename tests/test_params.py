"""Parameters: reading the parameters cell, parsing -p values, refusing unknown names."""

from __future__ import annotations

import json

import pytest

from offload.errors import NotebookError, ParameterError
from offload.notebook import (
    check_parameters,
    code_cells,
    declared_parameters,
    parse_assignments,
    parse_value,
    read_notebook,
)


@pytest.mark.parametrize("text,value", [
    ("0.01", 0.01), ("3", 3), ("[64,64]", [64, 64]), ("abc", "abc"), ("True", True), ("false", False),
    ("none", None), ("'quoted'", "quoted"), ('{"a": 1}', {"a": 1}), ("1e-3", 1e-3), ("a=b", "a=b"),
])
def test_values_parse_by_type(text, value):
    assert parse_value(text) == value


def test_assignments():
    assert parse_assignments(["lr=0.01", "name=abc", "layers=[64, 64]", "expr=x=1"]) == {
        "lr": 0.01, "name": "abc", "layers": [64, 64], "expr": "x=1"}
    with pytest.raises(ParameterError, match="-p name=value"):
        parse_assignments(["lr"])
    with pytest.raises(ParameterError, match="identifier"):
        parse_assignments(["1x=2"])


def test_declared_parameters_read_types_defaults_and_help(notebook):
    nb = read_notebook(notebook(params="lr = 0.01  # learning rate\nepochs: int = 3\nname = 'x'\nlayers = [64, 64]\nseed = compute()"))
    declared = declared_parameters(nb)
    assert declared["lr"] == {"default": 0.01, "type": "float", "source": "0.01", "help": "learning rate"}
    assert declared["epochs"]["type"] == "int" and declared["epochs"]["default"] == 3
    assert declared["layers"]["default"] == [64, 64]
    assert declared["seed"]["type"] == "expression"


def test_unknown_parameter_names_close_matches(notebook):
    nb = read_notebook(notebook(params="learning_rate = 0.01\nepochs = 3"))
    with pytest.raises(ParameterError, match="learning_rate") as info:
        check_parameters(nb, {"learning_rat": 0.1})
    assert "did you mean learning_rate" in str(info.value)
    with pytest.raises(ParameterError, match="expects a number"):
        check_parameters(nb, {"epochs": "three"})
    check_parameters(nb, {"epochs": 5, "learning_rate": 1e-3})


def test_no_parameters_cell(notebook):
    nb = read_notebook(notebook(cells=["x = 1"]))
    with pytest.raises(ParameterError, match="tagged 'parameters'"):
        check_parameters(nb, {"x": 2})
    check_parameters(nb, {})


def test_bad_notebooks(tmp_path):
    with pytest.raises(NotebookError, match="not found"):
        read_notebook(tmp_path / "missing.ipynb")
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(NotebookError, match="not valid JSON"):
        read_notebook(tmp_path / "broken.ipynb")
    (tmp_path / "script.py").write_text("print(1)")
    with pytest.raises(NotebookError, match="not a notebook"):
        read_notebook(tmp_path / "script.py")


def test_one_reader_for_every_format(tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "markdown", "source": ["# t"]},
        {"cell_type": "code", "input": ["import numpy\n", "x = 1"], "outputs": [], "language": "python"},
    ]}]}
    (tmp_path / "old.ipynb").write_text(json.dumps(v3))
    nb = read_notebook(tmp_path / "old.ipynb")
    assert nb.nbformat == 4 and code_cells(nb) == [(2, "import numpy\nx = 1")]
    (tmp_path / "bare.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": "y = 2"}]}))
    assert code_cells(read_notebook(tmp_path / "bare.ipynb", validate=False)) == [(1, "y = 2")]
    (tmp_path / "list.ipynb").write_text("[]")
    with pytest.raises(NotebookError, match="not a notebook"):
        read_notebook(tmp_path / "list.ipynb")
    (tmp_path / "dir.ipynb").mkdir()
    with pytest.raises(NotebookError, match="is a directory"):
        read_notebook(tmp_path / "dir.ipynb")
