"""%%offload through a real kernel: the local backend, warm session, values out and back."""

from __future__ import annotations

import os
import re
import threading

import pytest

from offload.cells.namespace import UnpicklableValueError, capture, restore
from offload.cells.remote import read_payload

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------------------------------------
# namespace capture, no kernel


def test_capture_shares_objects_and_reports_sizes():
    import numpy as np

    arr = np.zeros(1000)
    ns = {"a": arr, "b": {"same": arr}, "np": np, "n": 3}
    cap = capture(ns, ["a", "b", "np", "n", "print"])
    assert cap.imports == ["import numpy as np"]
    assert cap.names == ["a", "b", "n"] and cap.not_found == ["print"]
    assert cap.sizes["a"] > 8000 and cap.sizes["b"] < 200  # b refers to a's array, not a copy
    back = read_payload(cap.payload)
    assert back["b"]["same"] is back["a"]


def test_large_arrays_travel_out_of_band_and_come_back_writable(tmp_path):
    """Pickle protocol 5: an array's memory is one part of the payload (not copied into the
    stream), the stored payload is the array's size plus a small header, and what comes back
    from a store read is an equal, writable array (views into the one buffer read)."""
    import numpy as np

    from offload.cells.remote import save_outputs
    from offload.store import Store

    arr = np.arange(1_000_000, dtype="float64")
    cap = capture({"a": arr, "s": "small"}, ["a", "s"])
    assert any(memoryview(p).obj is arr or getattr(memoryview(p).obj, "obj", None) is arr for p in cap.parts)
    store = Store(tmp_path.as_uri())
    store.put_parts("blob", cap.parts)
    assert arr.nbytes <= (tmp_path / "blob").stat().st_size < arr.nbytes + 4096
    back = read_payload(store.get_buffer("blob"))
    assert back["s"] == "small" and np.array_equal(back["a"], arr)
    back["a"][0] = -1.0  # writable, like the array the user pushed
    assert arr[0] == 0.0

    os.environ["OFFLOAD_OUTPUT_DIR"] = str(tmp_path / "out")
    try:
        save_outputs({"b": arr * 2, "t": (1, 2)}, ["b", "t"], [], 2 * 1024**3)
    finally:
        del os.environ["OFFLOAD_OUTPUT_DIR"]
    cell_dir = tmp_path / "out" / "__cell__"
    import json

    store.put_file(cell_dir / "results.pkl", "results")
    out = restore(store.get_buffer("results"), json.loads((cell_dir / "manifest.json").read_text()))
    assert np.array_equal(out.values["b"], arr * 2) and out.values["t"] == (1, 2)
    out.values["b"][1] = 7.0


def test_capture_warns_above_threshold_and_suggests_data():
    cap = capture({"big": b"x" * 5000}, ["big"], warn_bytes=1000)
    assert len(cap.warnings) == 1 and "big" in cap.warnings[0] and "--data" in cap.warnings[0]


@pytest.mark.parametrize("make, type_name", [(lambda p: open(p, "a"), "TextIOWrapper"), (lambda p: threading.Lock(), "lock")])
def test_unpicklable_value_names_variable_and_type(tmp_path, make, type_name):
    (tmp_path / "f.txt").write_text("x")
    value = make(tmp_path / "f.txt")
    with pytest.raises(UnpicklableValueError) as err:
        capture({"thing": value, "ok": 1}, ["ok", "thing"])
    assert "'thing'" in str(err.value) and type_name in str(err.value)
    assert err.value.hint


def test_restore_reports_what_stayed_remote():
    import pickle

    manifest = {"values": {"x": {"kind": "pickle", "size": 5}, "os": {"kind": "module", "module": "os"}},
                "skipped": {"h": "cannot be pickled (builtins.generator)"}, "deleted": ["tmp"]}
    out = restore(pickle.dumps({"x": pickle.dumps(41)}), manifest)
    ns = {"tmp": 1}
    out.apply(ns)
    assert ns["x"] == 41 and ns["os"] is os and "tmp" not in ns
    assert any("h stayed remote" in w for w in out.warnings)


# ------------------------------------------------------------------------------------------------
# through a kernel


class Kernel:
    def __init__(self, kc):
        self.kc = kc

    def run(self, code: str, timeout: float = 240) -> list[dict]:
        msg_id = self.kc.execute(code)
        outs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                return outs
            if kind in ("stream", "display_data", "execute_result", "error"):
                outs.append({"type": kind, **msg["content"]})

    def ok(self, code: str) -> list[dict]:
        outs = self.run(code)
        errors = [o for o in outs if o["type"] == "error"]
        assert not errors, "\n".join(_strip(t) for t in errors[0]["traceback"])
        return outs

    def value(self, expr: str):
        outs = self.ok(f"print(repr({expr}))")
        return "".join(o["text"] for o in outs if o["type"] == "stream" and o["name"] == "stdout").strip()


def _strip(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def stdout(outs: list[dict]) -> str:
    return "".join(o["text"] for o in outs if o["type"] == "stream" and o["name"] == "stdout")


def displayed(outs: list[dict]) -> str:
    """The plain text of display outputs (where %%offload's [offload] status lines go)."""
    return "\n".join(o["data"].get("text/plain", "") for o in outs if o["type"] == "display_data")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    from jupyter_client.manager import start_new_kernel

    home = tmp_path_factory.mktemp("magic-home")
    cwd = tmp_path_factory.mktemp("magic-project")
    env = dict(os.environ, OFFLOAD_HOME=str(home))
    env.pop("OFFLOAD_STORE", None)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)
    k = Kernel(kc)
    k.ok("%load_ext offload")
    yield k
    k.run("%offload stop")
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def test_values_out_and_back(kernel):
    kernel.ok(
        "import numpy as np, pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X = np.random.RandomState(0).rand(200, 4); y = (X.sum(1) > 2).astype(int)\n"
        "df = pd.DataFrame({'a': [1, 2, 3]})\n"
        "n = 41\n"
        "def double(v):\n    return 2 * v\n"
        "class Point:\n    def __init__(self, x): self.x = x\n    def norm(self): return abs(self.x)\n"
        "p = Point(-3)\n"
    )
    outs = kernel.ok(
        "%%offload\n"
        "model = LogisticRegression().fit(X, y)\n"
        "score = model.score(X, y)\n"
        "n2 = double(n) + 1\n"
        "df2 = df.assign(b=df.a * 10)\n"
        "arr = X[:3] * 2\n"
        "q = Point(p.norm() + 1)\n"
        "print('remote score', round(score, 2))\n"
    )
    # the status line is its own plain-text output: not stderr's red background, not the cell's stdout
    assert not any("[offload]" in o["text"] for o in outs if o["type"] == "stream")
    status = displayed(outs)
    assert "[offload] job" in status and "sent" in status and "X (6.4 kB)" in status
    assert "remote score" in stdout(outs)
    assert kernel.value("n2") == "83"
    assert kernel.value("df2.b.tolist()") == "[10, 20, 30]"
    assert kernel.value("bool((arr == X[:3] * 2).all())") == "True"
    assert kernel.value("model.predict(X[:5]).tolist() == LogisticRegression().fit(X, y).predict(X[:5]).tolist()") == "True"
    assert kernel.value("round(score, 4) == round(model.score(X, y), 4)") == "True"
    assert kernel.value("(isinstance(q, Point), q.x)") == "(True, 4)"


def test_function_defined_in_cell_comes_back_and_imports_replayed(kernel):
    kernel.ok("import math as m\nbase = 10")
    outs = kernel.ok("%%offload\ndef shifted(v):\n    return m.floor(v) + base\nr = shifted(2.7)\n")
    assert "imports: math as m" in displayed(outs)
    assert kernel.value("(r, shifted(5.5))") == "(12, 15)"


def test_stdout_streams_in_order(kernel):
    outs = kernel.ok(
        "%%offload\nimport sys, time\n"
        "for i in range(4):\n    print('line', i)\n    sys.stdout.flush()\n    time.sleep(0.3)\n"
        "print('done')\n"
    )
    text = stdout(outs)
    assert text.splitlines() == ["line 0", "line 1", "line 2", "line 3", "done"]


def test_matplotlib_figure_is_displayed(kernel):
    outs = kernel.ok(
        "%%offload\nimport matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 3, 2])\nplt.show()\n"
        "from IPython.display import HTML, display\ndisplay(HTML('<b>hi</b>'))\n"
    )
    kinds = [set(o.get("data", {})) for o in outs if o["type"] == "display_data"]
    assert any("image/png" in k for k in kinds)
    assert any("text/html" in k for k in kinds)


def test_remote_exception_points_at_the_line_and_assigns_nothing(kernel):
    outs = kernel.run("%%offload\nbefore = 1\nx = [1, 2]\nx[5]\nafter = 2\n")
    err = [o for o in outs if o["type"] == "error"]
    assert err and err[0]["ename"] == "IndexError"
    tb = _strip("\n".join(err[0]["traceback"]))
    assert "line 4" in tb and "x[5]" in tb and "raised remotely" in tb
    assert kernel.value("'before' in globals()") == "False"
    # the re-raised exception is the real type: user code can catch it
    kernel.ok("try:\n    get_ipython().run_cell_magic('offload', '', '{}[1]')\nexcept KeyError as e:\n    caught = repr(e)")
    assert kernel.value("caught") == "'KeyError(1)'"


def test_unpicklable_value_is_a_clear_error(kernel, tmp_path):
    (tmp_path / "f.txt").write_text("hello")
    kernel.ok(f"fh = open({str(tmp_path / 'f.txt')!r}, 'a')\nimport threading\nlk = threading.Lock()")
    for name, type_name in (("fh", "TextIOWrapper"), ("lk", "lock")):
        outs = kernel.run(f"%%offload\nv = {name}\n")
        err = [o for o in outs if o["type"] == "error"]
        assert err and err[0]["ename"] == "UnpicklableValueError"
        msg = _strip("\n".join(err[0]["traceback"]))
        assert f"'{name}'" in msg and type_name in msg and "hint" in msg
        assert len(err[0]["traceback"]) == 1  # the cause, not a traceback through offload's code


def test_detach_then_result_and_listed(kernel):
    outs = kernel.ok("%%offload --detach\nimport time\ntime.sleep(0.5)\nlate = 'back'\nprint('detached cell ran')\n")
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in outs if o["type"] == "execute_result")
    job_id = re.search(r"offload cell job (\S+)", shown).group(1)
    assert kernel.value("'late' in globals()") == "False"
    outs = kernel.ok(f"%offload result {job_id}")
    assert "detached cell ran" in stdout(outs)
    assert kernel.value("late") == "'back'"
    listing = stdout(kernel.ok("%offload ls 50"))
    assert job_id in listing and "succeeded" in listing


def test_push_pull_and_no_pull(kernel):
    kernel.ok("a1 = 1\na2 = 2")
    kernel.ok("%%offload --pull b1\nb1 = a1 + 1\nb2 = 5\n")
    assert kernel.value("(b1, 'b2' in globals())") == "(2, False)"
    kernel.ok("%%offload --no-pull\nc1 = 3\n")
    assert kernel.value("'c1' in globals()") == "False"
    outs = kernel.run("%%offload --push nosuch\nz = 1\n")
    assert [o for o in outs if o["type"] == "error"][0]["ename"] == "UsageError"


def test_config_defaults_and_bad_option(kernel):
    kernel.ok("%offload config --max-runtime 10m")
    outs = kernel.run("%%offload --frobnicate\nx = 1\n")
    err = [o for o in outs if o["type"] == "error"]
    assert err and "unrecognized arguments" in _strip(err[0]["traceback"][0])
    kernel.ok("%offload config --reset")


def test_a_warm_cell_is_a_cell_of_its_own(kernel):
    """A warm session runs the user's cell as IPython runs a cell: top-level await, the last
    expression shown as its result, display updates, and a traceback through the cell's lines."""
    outs = kernel.ok(
        "%%offload\nimport asyncio\nfrom IPython.display import display\n"
        "h = display('first', display_id=True)\nawait asyncio.sleep(0.01)\nh.update('updated')\n"
        "answer = 6 * 7\nanswer\n"
    )
    shown = displayed(outs)
    assert "'updated'" in shown and "'first'" not in shown.split("\n", 1)[-1]
    assert "42" in shown
    assert kernel.value("answer") == "42"
    outs = kernel.run("%%offload\nimport asyncio\nawait asyncio.sleep(0)\nraise ValueError('in the cell')\n")
    err = [o for o in outs if o["type"] == "error"]
    assert err and err[0]["ename"] == "ValueError"
    tb = _strip("\n".join(err[0]["traceback"]))
    assert "line 4" in tb and "raise ValueError" in tb
    assert "offload/cells/remote.py" not in tb and "run_warm" not in tb


def test_a_value_that_cannot_be_loaded_remotely_stops_the_cell_and_the_session_goes_on(kernel):
    """The setup step fails (a pushed value whose unpickling raises): the cell does not run, the
    error says where it failed, and the next cell runs on the same warm session."""
    kernel.ok(
        "def _refuse():\n    raise RuntimeError('this value refuses to load here')\n"
        "class Stubborn:\n    def __reduce__(self):\n        return (_refuse, ())\n"
        "s = Stubborn()\nran = 'no'\n"
    )
    outs = kernel.run("%%offload\nran = 'yes'\nprint(s)\n")
    err = [o for o in outs if o["type"] == "error"]
    assert err, outs
    text = _strip("\n".join(err[0]["traceback"]))
    assert "refuses to load here" in text and "setup/collect step" in text
    assert kernel.value("ran") == "'no'"
    before = stdout(kernel.ok("%offload status"))
    kernel.ok("%%offload\nafter = 1 + 1\n")
    assert kernel.value("after") == "2"
    assert before.split("warm session: ")[-1].split(" (")[0] == \
        stdout(kernel.ok("%offload status")).split("warm session: ")[-1].split(" (")[0]


def test_cancelling_a_warm_cell_interrupts_it_and_keeps_the_session(kernel):
    kernel.ok("%%offload\nkept = 'in the session kernel'\n")
    # a cell that never ends by itself: only an interrupt stops it (kernel.run's deadline fails the test)
    outs = kernel.ok("%%offload --detach\nimport time\nwhile True:\n    time.sleep(0.1)\nlong = 1\n")
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in outs if o["type"] == "execute_result")
    job_id = re.search(r"offload cell job (\S+)", shown).group(1)
    assert "cancelling" in stdout(kernel.ok(f"%offload cancel {job_id}"))
    outs = kernel.run(f"%offload result {job_id}")
    err = [o for o in outs if o["type"] == "error"]
    assert err and "cancelled" in _strip("\n".join(err[0]["traceback"]))
    assert kernel.value("'long' in globals()") == "False"
    kernel.ok("%%offload\nsame = 1\n")
    assert kernel.value("same") == "1"
