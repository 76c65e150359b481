import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")
# pytest-xdist runs N test processes: share the cores among them rather than oversubscribe
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
if os.environ.get("LANDSCAPE_NUMERICS") == "alt":
    # CI's second run under the second numerical configuration (analyses.cli_common.ALT_NUMERICS):
    # its thread count is part of what differs from the first run
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 2))
else:
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))


@pytest.fixture
def f64():
    return torch.float64


@pytest.fixture
def calls(monkeypatch):
    """How many Hessian-vector products were computed, counted where every product is computed
    (``HessianOperator._matvec``), independently of :mod:`landscape.budget`: ``calls[0]``."""
    from landscape.operators.hessian import HessianOperator
    n = [0]
    inner = HessianOperator._matvec

    def counted(self, v):
        n[0] += 1
        return inner(self, v)
    monkeypatch.setattr(HessianOperator, "_matvec", counted)
    return n
