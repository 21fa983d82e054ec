"""``%%offload``: one cell run remotely, its inputs out and its results back.

``magic`` (the IPython magic and ``run_cell`` for JupyterLab's Run Cell on GPU), ``analysis``
(names a cell reads and assigns), ``namespace`` (values out and back), ``notebook`` (the small
notebook a cell becomes), ``remote`` (the half that runs in the job's kernel; it imports only the
store), ``session`` (the client of a warm session). ``offload.load_ipython_extension`` is the entry.
"""

from offload import _startup

_startup.defer_format_grammars()  # `%load_ext offload` in a kernel: no IRI grammar built at import
