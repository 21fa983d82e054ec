"""Saving a running notebook's outputs costs what changed, not the whole notebook each time.

The live saves are counted (store objects and bytes written by the runner's ``LiveOutput``), never
timed: a notebook four times as long writes about four times the bytes, where saving it whole at
every cell (as before) wrote sixteen times. The end of a job stores the complete notebook once,
and a running job's notebook can be read as far as it has run.
"""

from __future__ import annotations

import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from offload.jobs import submit
from offload.runner.output import MIN_INTERVAL_S, LiveOutput
from offload.store import Store, layout, read_output
from offload.store._live import live_key

JOB = "20261205-000000-abcdef"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def simulate(store: Store, n_cells: int, *, cells_per_second: int = 20, lines: int = 3) -> LiveOutput:
    """Execute a notebook of ``n_cells`` cells as papermill would (each prints ``lines`` lines),
    ``cells_per_second`` a second, with the monitor's save every quarter second; the clock is
    simulated, so the counts do not depend on this machine's speed."""
    nb = new_notebook(cells=[new_markdown_cell("# long")] + [new_code_cell(f"print({i})") for i in range(n_cells)])
    clock = Clock()
    live = LiveOutput(store, JOB, clock=clock)
    per_tick = max(1, cells_per_second // 4)
    i = 1
    while i <= n_cells:
        for _ in range(per_tick):
            if i > n_cells:
                break
            cell = nb.cells[i]
            cell.execution_count = i
            for k in range(lines):
                cell.outputs.append(new_output("stream", name="stdout", text=f"cell {i} line {k}\n"))
            i += 1
        clock.t += 0.25
        live.save(nb, min(i, n_cells))
    live.save(nb, n_cells + 1, force=True)
    assert read_output(store, JOB) == nb  # the live copy is the notebook as it ran, cell for cell
    return live


def test_live_saves_grow_linearly_with_the_notebook(tmp_path):
    short = simulate(Store((tmp_path / "a").as_uri()), 250)
    long = simulate(Store((tmp_path / "b").as_uri()), 1000)
    ratio = long.bytes / short.bytes
    assert 3.0 <= ratio <= 5.0, (short.stats(), long.stats())  # linear: about 4; whole-notebook saves: about 16
    assert long.writes / short.writes <= 5.0
    # at most one save a second: about one block rewrite per second of running, plus the first
    assert long.writes <= (1000 / 20) / MIN_INTERVAL_S * 2 + 1000 // 50 + 2


def test_a_cell_streaming_fast_is_saved_at_a_bounded_rate(tmp_path):
    store = Store(tmp_path.as_uri())
    nb = new_notebook(cells=[new_code_cell("while True: print('x' * 1000)")])
    clock = Clock()
    live = LiveOutput(store, JOB, clock=clock)
    saves = 0
    for _ in range(400):  # 100 simulated seconds, a 1 kB line every quarter second... growing
        nb.cells[0].outputs.append(new_output("stream", name="stdout", text="x" * 100_000))
        clock.t += 0.25
        saves += live.save(nb, 0)
    assert saves <= 100 / MIN_INTERVAL_S + 1
    # a growing block waits longer between saves (size debounce): fewer than one save a second
    assert saves < 100


def test_a_failed_write_is_tried_again(tmp_path):
    store = Store(tmp_path.as_uri())
    nb = new_notebook(cells=[new_code_cell("print(1)")])
    clock = Clock()
    live = LiveOutput(store, JOB, clock=clock)
    real_put = store.put_bytes
    store.put_bytes = lambda key, data: (_ for _ in ()).throw(OSError("store down"))  # type: ignore[method-assign]
    with pytest.raises(OSError):
        live.save(nb, 0)
    store.put_bytes = real_put  # type: ignore[method-assign]
    nb.cells[0].outputs.append(new_output("stream", name="stdout", text="1\n"))
    assert live.save(nb, 0)
    assert read_output(store, JOB)["cells"][0]["outputs"][0]["text"] == "1\n"


@pytest.mark.slow
def test_a_long_notebook_runs_with_live_and_final_saves(notebook):
    """A real 400-cell run: the live copy is readable while it runs, the final notebook is
    complete, the live copy is gone, and the runner reports what its live saves wrote."""
    cells = [f"print('cell {i}')" for i in range(399)] + ["import time\ntime.sleep(2)\nprint('last')"]
    job = submit(notebook("long.ipynb", cells))
    deadline = time.monotonic() + 300
    partial = None
    while job.refresh()["state"] in ("queued", "provisioning", "running"):
        assert time.monotonic() < deadline
        partial = job.output_notebook or partial
        time.sleep(0.2)
    assert job.state == "succeeded"
    assert partial is not None  # seen while running: the live copy
    out = job.output_notebook
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in out.cells if c.cell_type == "code"]
    assert texts[0] == "cell 0\n" and texts[398] == "cell 398\n" and texts[399] == "last\n"
    assert out.metadata["offload"]["job_id"] == job.id
    assert not job.store.list(live_key(job.id))
    saves = job.status["output_saves"]
    final = len(job.store.get_bytes(layout.job_key(job.id, "output.ipynb")))
    assert saves["writes"] >= 2 and saves["bytes"] > 0
    nbformat.validate(nbformat.from_dict(out))
    assert final > 0
