"""The remote side: ``python -m offload.runner STORE_URL JOB_ID`` is the one program a backend starts.

The runner reads the job's spec and looks its program up in :data:`PROGRAMS` by ``spec.kind``:

=============  =============================================  ================================
kind           program                                        module
=============  =============================================  ================================
notebook       the notebook through papermill                 :mod:`offload.runner.job`
cell           a cold ``%%offload`` cell (a small notebook)   :mod:`offload.runner.job`
trial          a sweep trial (a parametrized notebook)        :mod:`offload.runner.job`
session        a warm ``%%offload`` session (kernel kept)     :mod:`offload.runner.session`
pack           up to K sweep trials on one machine            :mod:`offload.runner.pack`
=============  =============================================  ================================

The table and ``main`` are in :mod:`offload.runner.programs`. This package imports nothing, so
that ``python -m offload.runner`` can trim its start-up first, and a process that only needs
:mod:`offload.runner.environment` pays for nothing else. Every program shares
:mod:`offload.runner.core` (status, logs, metrics, heartbeat, stop, finish) and
:mod:`offload.runner.kernel`; :mod:`offload.runner.environment` builds isolated environments.
Nothing here imports client code (jobs, cells, sweeps, cli).
"""
