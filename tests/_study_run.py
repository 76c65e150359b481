"""One quick `landscape study` per test session, shared by the tests that read its outputs."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_DIR: list[Path] = []


def quick_study(rerun: bool = False) -> Path:
    """The output folder of `landscape study --quick` (run once; ``rerun=True`` runs it again
    into the same folder under the second numerical configuration, ``LANDSCAPE_NUMERICS=alt``:
    other BLAS/LAPACK branches, vector widths and thread counts, as another machine would run).
    Each run is a fresh process, as a user's rerun is."""
    if not _DIR:
        d = Path(tempfile.mkdtemp(prefix="study-quick-")) / "figures"
        atexit.register(shutil.rmtree, d.parent, True)
        _DIR.append(d)
    elif not rerun:
        return _DIR[0]
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg", LANDSCAPE_NUMERICS="alt" if rerun else "pinned")
    env.pop("LANDSCAPE_NO_REEXEC", None)
    res = subprocess.run([sys.executable, "-m", "analyses.cli", "study", "--quick", "--out", str(_DIR[0]),
                          "--workers", "2", "--quiet"], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return _DIR[0]


def tracked_outputs(out: Path) -> list[str]:
    """Files under ``out`` that git would track if ``out`` were the repository's figures/
    (asks git itself, through the repository's .gitignore)."""
    rel = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    if not rel:
        return []
    paths = "\n".join(f"figures/{r}" for r in rel)
    res = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input=paths, text=True,
                         capture_output=True)
    ignored = set(res.stdout.split())
    return [r for r in rel if f"figures/{r}" not in ignored]
