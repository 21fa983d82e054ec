"""Notebook I/O, in one place: read, cell ids and hashes, IPython syntax -> Python, parameters,
the pure output merge.

Everything here works on nbformat v4 ``NotebookNode`` objects or paths and imports only the
foundation modules; nothing here knows about jobs, stores or backends.
"""

from offload.notebook.cells import CELL_JOB_CELLS, cell_hash, ensure_cell_ids, with_cell_ids
from offload.notebook.ipython import Magic, TransformedCell, to_python, transform_cell
from offload.notebook.merge import (
    SKIP_TAGS,
    CellMatch,
    MergeReport,
    align_cells,
    merge_notebooks,
    provenance_of,
)
from offload.notebook.params import (
    check_parameters,
    declared_parameters,
    load_param_file,
    parameters_cell,
    parse_assignments,
    parse_value,
)
from offload.notebook.reader import code_cells, notebook_from_json, read_notebook, strip_ansi

__all__ = [
    "read_notebook",
    "notebook_from_json",
    "code_cells",
    "strip_ansi",
    "CELL_JOB_CELLS",
    "cell_hash",
    "ensure_cell_ids",
    "with_cell_ids",
    "Magic",
    "TransformedCell",
    "to_python",
    "transform_cell",
    "SKIP_TAGS",
    "MergeReport",
    "CellMatch",
    "align_cells",
    "merge_notebooks",
    "provenance_of",
    "check_parameters",
    "declared_parameters",
    "load_param_file",
    "parameters_cell",
    "parse_assignments",
    "parse_value",
]
