"""The README's quick start, run as written in a fresh virtual environment on a copy of the
repository: the install lines verbatim, then the main job (as `--quick`, its short form); the
venv must stay under 2 GB (a CUDA torch makes it 5.9 GB)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_VENV_BYTES = 2 * 1024 ** 3


def quick_start_lines() -> list[str]:
    """The commands of the first ```bash block under '## Quick start' (comments stripped, ``&&`` chains split)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    cmds = [c.strip() for line in lines if line and not line.startswith("#") for c in line.split(" && ")]
    return [c for c in cmds if c]


def test_quick_start_block_installs_cpu_torch_first_then_the_project_then_the_main_job():
    lines = quick_start_lines()
    pip = [i for i, line in enumerate(lines) if line.startswith("pip install")]
    assert lines[pip[0]] == "pip install torch==2.13.0"
    assert lines[pip[1]] == 'pip install -e ".[test]"' and pip[0] < pip[1]
    assert any(line == "landscape study" for line in lines[pip[1]:])


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
def test_quick_start_in_a_fresh_venv(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the repository's files")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    clone = tmp_path / "clone"
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (clone / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / f)
    lines = quick_start_lines()
    script = ["set -euo pipefail"]
    for line in lines:
        if line.startswith("python -m pytest"):
            continue                                    # the suite itself: this test is part of it
        if line == "landscape study":
            # the main job's entry point, on two of its parts (the whole job runs in test_study.py)
            line = "landscape study --quick --quiet --only theorems,surface_plots"
        script.append(line)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    res = subprocess.run(["bash", "-c", "\n".join(script)], cwd=clone, env=env, capture_output=True, text=True,
                         timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    venv = clone / ".venv"
    size = _du(venv)
    print(f"fresh venv: {size / 1024 ** 3:.2f} GB")
    assert size < MAX_VENV_BYTES, f"venv is {size / 1024 ** 3:.2f} GB"
    torch_version = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    assert torch_version.startswith("2.13.0") and "cu" not in torch_version, torch_version
    assert (clone / "figures" / "report.html").is_file()
