"""Merge back: outputs into unchanged cells only, by id and source hash."""

from __future__ import annotations

import copy

import nbformat
from nbformat.v4 import new_code_cell, new_output

from offload.notebook import cell_hash, ensure_cell_ids, merge_notebooks
from tests.notebooks import make_notebook


def _executed(nb):
    out = copy.deepcopy(nb)
    injected = new_code_cell("lr = 0.5")
    injected.metadata["tags"] = ["injected-parameters"]
    injected.outputs = [new_output("stream", name="stdout", text="injected\n")]
    out.cells.insert(2, injected)
    for i, cell in enumerate(out.cells):
        if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", []):
            cell.outputs = [new_output("stream", name="stdout", text=f"out {cell.id}\n")]
            cell.execution_count = i
    return out


def _setup(tmp_path):
    path = make_notebook(tmp_path / "nb.ipynb", ["a = 1", "b = 2", "c = 3"], params="lr = 0.1")
    nb = nbformat.read(path, as_version=4)
    hashes = {c.id: cell_hash(c.source) for c in nb.cells}
    return nb, _executed(nb), hashes


def test_unchanged_cells_get_outputs(tmp_path):
    target, executed, hashes = _setup(tmp_path)
    report = merge_notebooks(target, executed, hashes, provenance={"job_id": "j1"})
    code = [c for c in target.cells if c.cell_type == "code"]
    assert len(report.merged) == 4 and not report.edited and not report.deleted
    assert all(c.outputs and c.outputs[0].text == f"out {c.id}\n" for c in code)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in target.cells)
    assert target.metadata["offload"]["last_run"]["job_id"] == "j1"


def test_edited_cell_is_left_alone_and_reported(tmp_path):
    target, executed, hashes = _setup(tmp_path)
    edited = target.cells[3]
    edited.source = "a = 100  # my edit"
    edited.outputs = [new_output("stream", name="stdout", text="mine\n")]
    report = merge_notebooks(target, executed, hashes)
    assert report.edited == [edited.id]
    assert edited.source == "a = 100  # my edit" and edited.outputs[0].text == "mine\n"


def test_deleted_and_reordered_cells(tmp_path):
    target, executed, hashes = _setup(tmp_path)
    gone = target.cells.pop(4)
    target.cells[2], target.cells[3] = target.cells[3], target.cells[2]
    report = merge_notebooks(target, executed, hashes)
    assert report.deleted == [gone.id]
    assert target.cells[2].outputs[0].text == f"out {target.cells[2].id}\n"
    assert target.cells[3].outputs[0].text == f"out {target.cells[3].id}\n"


def test_papermill_error_banner_is_not_copied(tmp_path):
    target, executed, hashes = _setup(tmp_path)
    banner = new_code_cell("%%html\n<span>An Exception was encountered</span>")
    banner.metadata["tags"] = ["papermill-error-cell-tag"]
    executed.cells.insert(0, banner)
    before = len(target.cells)
    merge_notebooks(target, executed, hashes)
    assert len(target.cells) == before


def test_pre_45_notebook_gets_ids_in_memory_and_the_file_is_not_rewritten(tmp_path):
    path = make_notebook(tmp_path / "old.ipynb", ["x = 1"], params="lr = 1", minor=4)
    before = path.read_bytes()
    nb = ensure_cell_ids(path)
    assert nb.nbformat_minor >= 5 and all(c.get("id") for c in nb.cells)
    assert path.read_bytes() == before  # a run never rewrites the user's file
    assert [c.id for c in ensure_cell_ids(path).cells] == [c.id for c in nb.cells]  # same ids each time


def _idless(nb):
    out = copy.deepcopy(nb)
    out.nbformat_minor = 4
    for c in out.cells:
        c.pop("id", None)
    return out


def test_merge_into_a_copy_without_ids_matches_by_position_and_source(tmp_path):
    target, executed, hashes = _setup(tmp_path)
    copy_ = _idless(target)  # a fresh clone / a teammate's copy: same sources, no ids
    report = merge_notebooks(copy_, executed, hashes)
    assert len(report.merged) == 4 and report.by_position == 4
    assert not report.edited and not report.deleted
    code = [c for c in copy_.cells if c.cell_type == "code"]
    assert [c.outputs[0].text for c in code] == [f"out {c.id}\n" for c in target.cells if c.cell_type == "code"]
    assert "merged outputs of 4 cell(s)" in report.describe() and "by position" in report.describe()


def test_merge_without_ids_reports_edits_and_survives_inserted_cells(tmp_path):
    target, executed, hashes = _setup(tmp_path)
    copy_ = _idless(target)
    copy_.cells.insert(1, new_code_cell("print('a cell added in the copy')"))
    copy_.cells[4].source = "b = 20  # edited in the copy"  # was "b = 2"
    copy_.cells[4].outputs = [new_output("stream", name="stdout", text="mine\n")]
    report = merge_notebooks(copy_, executed, hashes)
    assert report.edited == ["cell 5"] and len(report.merged) == 3 and not report.deleted
    assert copy_.cells[4].outputs[0].text == "mine\n"  # never overwritten
    assert copy_.cells[1].outputs == []  # the added cell is left alone
    assert copy_.cells[5].outputs[0].text.startswith("out ")


def test_merge_with_other_ids_falls_back_to_position(tmp_path):
    target, executed, hashes = _setup(tmp_path)
    other = copy.deepcopy(target)
    for i, c in enumerate(other.cells):
        c.id = f"theirs-{i}"  # another Jupyter gave the copy its own ids
    report = merge_notebooks(other, executed, hashes)
    assert len(report.merged) == 4 and report.merged[0].startswith("theirs-")


def test_in_memory_notebook_gets_ids_and_nothing_is_written(tmp_path):
    path = make_notebook(tmp_path / "old.ipynb", ["x = 1", "y = 2"], params="lr = 1", minor=4)
    before = path.read_bytes()
    nb = nbformat.reads(before.decode(), as_version=4)
    assert not any(c.get("id") for c in nb.cells)
    same = ensure_cell_ids(nb)
    assert same is nb and nb.nbformat_minor >= 5
    ids = [c.id for c in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids)
    assert ensure_cell_ids(nb).cells[0].id == ids[0]  # ids are given once
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["old.ipynb"]
