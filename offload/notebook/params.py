"""Notebook parameters: read the ``parameters`` cell, parse values, check names before launch.

papermill only warns about an unknown parameter after the run has started; a typo then costs a
whole GPU run. Here an unknown name is an error that suggests the close matches.
"""

from __future__ import annotations

import ast
import difflib
import json
from pathlib import Path
from typing import Any

import nbformat
import yaml

from offload.errors import ParameterError, UsageError

__all__ = [
    "parameters_cell",
    "declared_parameters",
    "parse_value",
    "parse_assignments",
    "load_param_file",
    "check_parameters",
]


def parameters_cell(nb: nbformat.NotebookNode) -> tuple[int, Any] | None:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return i, cell
    return None


def _type_name(node: ast.expr, value: Any) -> str:
    if value is not None or isinstance(node, ast.Constant):
        return type(value).__name__ if value is not None else "None"
    return "expression"


def declared_parameters(nb: nbformat.NotebookNode) -> dict[str, dict[str, Any]]:
    """``{name: {"default": value-or-None, "type": "float", "source": "0.01", "help": ...}}``.

    Parsed with ``ast`` (no execution) in the style of papermill's inspection: simple assignments,
    annotated assignments, and a trailing ``# comment`` as help text.
    """
    found = parameters_cell(nb)
    if not found:
        return {}
    source = found[1].source
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    lines = source.splitlines()
    out: dict[str, dict[str, Any]] = {}
    for stmt in tree.body:
        targets: list[ast.expr] = []
        annotation = None
        if isinstance(stmt, ast.Assign):
            targets, value_node = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value_node, annotation = [stmt.target], stmt.value, ast.unparse(stmt.annotation)
        else:
            continue
        try:
            value = ast.literal_eval(value_node)
            literal = True
        except (ValueError, SyntaxError, TypeError):
            value, literal = None, False
        line = lines[stmt.lineno - 1] if stmt.lineno - 1 < len(lines) else ""
        help_text = line.split("#", 1)[1].strip() if "#" in line[stmt.end_col_offset or 0:] else ""
        for t in targets:
            if isinstance(t, ast.Name):
                out[t.id] = {
                    "default": value,
                    "type": annotation or (type(value).__name__ if literal else "expression"),
                    "source": ast.unparse(value_node),
                    "help": help_text,
                }
    return out


def parse_value(text: str) -> Any:
    """``0.01`` -> float, ``3`` -> int, ``[64,64]`` -> list, ``true``/``True`` -> bool, else str."""
    s = text.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(s)
    except (json.JSONDecodeError, ValueError):
        return text


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"parameter {item!r} has no value", hint="write -p name=value, e.g. -p lr=0.01")
        name, value = item.split("=", 1)
        name = name.strip()
        if not name.isidentifier():
            raise ParameterError(f"parameter name {name!r} is not a Python identifier", hint="use the variable name from the parameters cell")
        out[name] = parse_value(value)
    return out


def load_param_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"parameter file {p} not found") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"parameter file {p} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"parameter file {p} must hold a mapping of name: value", hint="e.g. lr: 0.01")
    return data


def check_parameters(nb: nbformat.NotebookNode, params: dict[str, Any], *, notebook: str = "the notebook") -> None:
    """Unknown names are errors (with suggestions); a missing ``parameters`` cell too."""
    if not params:
        return
    declared = declared_parameters(nb)
    if parameters_cell(nb) is None:
        raise ParameterError(
            f"{notebook} has no cell tagged 'parameters', so {', '.join(sorted(params))} cannot be set",
            hint="tag the cell that defines the defaults with 'parameters' (JupyterLab: Property Inspector > Cell Tags)",
        )
    for name in params:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=3, cutoff=0.6)
            suggestion = f"did you mean {' or '.join(close)}?" if close else f"parameters are: {', '.join(declared) or 'none'}"
            raise ParameterError(f"unknown parameter {name!r} for {notebook}", hint=suggestion)
    for name, value in params.items():
        default = declared[name]["default"]
        if isinstance(default, bool) != isinstance(value, bool) and default is not None:
            raise ParameterError(
                f"parameter {name!r} expects {type(default).__name__} (default {default!r}), got {value!r}",
                hint=f"for example -p {name}={default!r}",
            )
        if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
            raise ParameterError(
                f"parameter {name!r} expects a number (default {default!r}), got the text {value!r}",
                hint=f"for example -p {name}={default!r}",
            )
