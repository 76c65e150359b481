"""The sweep on Dask distributed: a 2-worker LocalCluster gives the same records, byte for byte, as the
local process pool (skipped, with the reason, where the optional `cluster` extra is not installed)."""
import pytest

distributed = pytest.importorskip("distributed", reason="dask[distributed] (extra 'cluster') is not installed")


def test_local_cluster_records_equal_the_process_pool(tmp_path):
    from analyses.escape import run_benchmark

    kw = dict(parts=["main"], cells=["vanishing_strict"], methods=["gd", "rms"], instances=1, progress=False,
              figures=False)
    local, _ = run_benchmark(tmp_path / "local", workers=1, **kw)
    dask, _ = run_benchmark(tmp_path / "dask", workers=2, scheduler="local", **kw)
    assert len(local.records) == 2 and all(r["status"] == "ok" for r in dask.records)
    assert (tmp_path / "dask" / "escape.jsonl").read_bytes() == (tmp_path / "local" / "escape.jsonl").read_bytes()
