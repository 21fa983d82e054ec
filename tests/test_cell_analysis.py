"""Static analysis of a cell: the names %%offload ships out and brings back."""

from __future__ import annotations

import pytest

from offload.cells.analysis import analyze_cell
from offload.errors import UsageError
from offload.notebook import to_python, transform_cell


def rw(src: str) -> tuple[set[str], set[str]]:
    a = analyze_cell(src)
    return set(a.reads), set(a.writes)


def test_issue_example():
    src = (
        "from sklearn.linear_model import LogisticRegression\n"
        "model = LogisticRegression(max_iter=500).fit(X, y)\n"
        "score = model.score(X, y)\n"
        'print("train accuracy", score)\n'
    )
    a = analyze_cell(src)
    assert set(a.reads) == {"X", "y", "print"}
    assert a.writes == ["LogisticRegression", "model", "score"]


def test_read_before_write_and_write_before_read():
    assert rw("y = x + 1\nx = 2\nz = x") == ({"x"}, {"y", "x", "z"})
    assert rw("x = 1\nprint(x)")[0] == {"print"}


def test_augmented_assignment_reads_its_target():
    assert rw("total += 1") == ({"total"}, {"total"})
    assert rw("total = 0\ntotal += 1")[0] == set()


def test_attribute_and_subscript_targets_read_the_base():
    reads, writes = rw("cfg.lr = 0.1\narr[i] = 3")
    assert reads == {"cfg", "arr", "i"}
    assert writes == set()


def test_comprehension_scope():
    reads, writes = rw("sq = [v * k for v in values if v > lim]")
    assert reads == {"k", "values", "lim"}
    assert writes == {"sq"}
    # comprehension variable does not leak; a walrus does
    reads, writes = rw("r = [(last := v) for v in vs]\nprint(last)")
    assert "v" not in reads and "v" not in writes
    assert "last" in writes


def test_nested_comprehension_and_dict_comp():
    reads, _ = rw("d = {k: [j for j in range(k)] for k in ks}")
    assert reads == {"range", "ks"}


def test_function_scope_locals_params_and_globals():
    src = (
        "def f(a, b=default):\n"
        "    c = a + b + offset\n"
        "    return helper(c)\n"
        "out = f(1)\n"
    )
    reads, writes = rw(src)
    assert reads == {"default", "offset", "helper"}
    assert writes == {"f", "out"}


def test_function_global_statement_is_a_write():
    src = "def bump():\n    global counter\n    counter += 1\nbump()\n"
    reads, writes = rw(src)
    assert "counter" in reads and "counter" in writes and "bump" in writes


def test_nested_function_closure_not_a_global_read():
    src = (
        "def outer():\n"
        "    n = 0\n"
        "    def inner():\n"
        "        nonlocal n\n"
        "        n += step\n"
        "        return n\n"
        "    return inner\n"
    )
    reads, writes = rw(src)
    assert reads == {"step"}
    assert writes == {"outer"}


def test_function_defined_after_name_bound_does_not_read_it():
    reads, _ = rw("scale = 2\ndef f(x):\n    return x * scale\n")
    assert reads == set()


def test_lambda_and_default_args():
    reads, writes = rw("g = lambda x, y=base: x * factor")
    assert reads == {"base", "factor"}
    assert writes == {"g"}


def test_class_scope():
    src = (
        "class Model(Base):\n"
        "    size = width * 2\n"
        "    twice = size * 2\n"
        "    def forward(self, x):\n"
        "        return x * size_global\n"
        "m = Model()\n"
    )
    reads, writes = rw(src)
    assert reads == {"Base", "width", "size_global"}
    assert writes == {"Model", "m"}


def test_method_does_not_see_class_names():
    src = "class A:\n    k = 1\n    def f(self):\n        return k\n"
    reads, _ = rw(src)
    assert reads == {"k"}


def test_imports_bind_names():
    reads, writes = rw("import numpy as np\nimport os.path\nfrom a.b import c as d\nnp.zeros(3)")
    assert reads == set()
    assert writes == {"np", "os", "d"}


def test_star_import_is_reported():
    a = analyze_cell("from math import *\nprint(pi)")
    assert a.star_imports == ["math"]


def test_del_reads_and_reports_deletion():
    a = analyze_cell("del big\ntmp = 1\ndel tmp")
    assert "big" in a.reads
    assert set(a.deleted) == {"big", "tmp"}
    a = analyze_cell("del x\nx = 2")
    assert a.deleted == [] and "x" in a.writes


def test_branches_are_not_definite():
    reads, writes = rw("if cond:\n    x = 1\nprint(x)")
    assert {"cond", "x"} <= reads and "x" in writes
    reads, _ = rw("if cond:\n    x = 1\nelse:\n    x = 2\nprint(x)")
    assert "x" not in reads


def test_loops_are_not_definite():
    reads, writes = rw("for i in items:\n    last = i\nprint(last, i)")
    assert {"items", "last", "i"} <= reads
    assert {"i", "last"} <= writes
    reads, _ = rw("for i in items:\n    print(i)")
    assert "i" not in reads


def test_try_except_and_with():
    reads, writes = rw("try:\n    v = load()\nexcept ValueError as e:\n    v = None\nprint(v, e)")
    assert "v" not in reads and "e" in reads
    reads, writes = rw("with open(p) as fh:\n    txt = fh.read()\nprint(txt)")
    assert reads == {"open", "p", "print"}
    assert writes == {"fh", "txt"}


def test_ipython_syntax_is_understood():
    reads, writes = rw("%time y = f(x)\n!echo hi\nz = y")
    assert {"f", "x"} <= reads
    assert {"y", "z"} <= writes


def test_match_statement():
    src = "match cmd:\n    case [name, *rest]:\n        out = name\n    case _:\n        out = default\nprint(out)"
    reads, writes = rw(src)
    assert {"cmd", "default"} <= reads and "out" not in reads
    assert {"name", "rest", "out"} <= writes


def test_syntax_error_is_a_usage_error():
    with pytest.raises(UsageError, match="syntax error at line 2"):
        analyze_cell("x = 1\nx = = 2")


def test_timeit_reads_but_does_not_bind():
    reads, writes = rw("%timeit -n 3 r = model(data)")
    assert {"model", "data"} <= reads and "r" not in writes


# ------------------------------------------------------------------------------------------------
# IPython syntax -> Python (offload.notebook.ipython, shared with dependency detection)


def test_escapes_become_the_calls_ipython_makes():
    src = "%time y = f(x)\n!echo hi\nfiles = !ls\nn = %who_ls\nobj?\n!!date"
    assert to_python(src).splitlines() == [
        "get_ipython().run_line_magic('time', 'y = f(x)')",
        "get_ipython().system('echo hi')",
        "files = get_ipython().getoutput('ls')",
        "n = get_ipython().run_line_magic('who_ls', '')",
        "get_ipython().run_line_magic('pinfo', 'obj')",
        "get_ipython().getoutput('date')",
    ]
    kinds = [(m.kind, m.name, m.line) for m in transform_cell(src).magics]
    assert kinds == [("line", "time", 1), ("shell", "", 2), ("shell", "", 3), ("line", "who_ls", 4),
                     ("help", "pinfo", 5), ("shell", "", 6)]


def test_only_statement_starts_are_escapes_and_line_numbers_hold():
    src = 's = """\n!not a shell line\n"""\nq = (1,\n%2)\n%pip install \\\n  numpy\nimport numpy'
    out = to_python(src).splitlines()
    assert out[1] == "!not a shell line" and out[4] == "%2)"
    assert out[5] == "get_ipython().run_line_magic('pip', 'install  numpy')" and out[6] == ""
    assert out[7] == "import numpy"
    (magic,) = transform_cell(src).magics
    assert (magic.name, magic.args, magic.line) == ("pip", "install  numpy", 6)


def test_cell_magic_is_one_call_with_its_body():
    cell = transform_cell("\n%%writefile mod.py\nimport yaml\n")
    assert cell.python.splitlines()[1].startswith("get_ipython().run_cell_magic('writefile', 'mod.py', ")
    (magic,) = cell.magics
    assert (magic.kind, magic.args, magic.body, magic.line) == ("cell", "mod.py", "import yaml\n", 2)

