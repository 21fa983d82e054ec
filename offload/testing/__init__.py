"""Contract test suites, shipped so that a third-party backend or store can run them (as Optuna
ships ``optuna.testing``).

Subclass the suite in a test module of your own and supply its one abstract fixture::

    import pytest
    from offload.store import Store
    from offload.testing import BackendContract, BackendUnderTest, Capabilities

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend_under_test(self, tmp_path):
            return BackendUnderTest(name="mine", store=Store(tmp_path.as_uri()), ...)

This package imports pytest: import it from test code only (nothing else in ``offload`` does).
"""

from offload.testing.backend import (
    BackendContract,
    BackendUnderTest,
    Capabilities,
    make_notebook,
    wait_for,
)
from offload.testing.store import StoreContract

__all__ = ["BackendContract", "BackendUnderTest", "Capabilities", "StoreContract", "make_notebook", "wait_for"]
