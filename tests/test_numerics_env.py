"""The numerical configuration every command runs under (issue 21 item 5): the pins, the second
configuration for tests, and the one convention for round-off-level numbers in tracked outputs."""
import doctest
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyses import cli_common, roundoff
from analyses.cli_common import ALT_NUMERICS, DETERMINISTIC_ENV, PINNED_NUMERICS, deterministic_env

REPO = Path(__file__).resolve().parents[1]


def test_pinned_and_second_configuration_differ_in_every_library():
    pinned, alt = deterministic_env({}), deterministic_env({"LANDSCAPE_NUMERICS": "alt"})
    assert pinned["MKL_CBWR"] == "COMPATIBLE" and alt["MKL_CBWR"] == "AUTO"
    assert pinned["OMP_NUM_THREADS"] == pinned["MKL_NUM_THREADS"] == "1" and alt["OMP_NUM_THREADS"] == "2"
    assert pinned["PYTHONHASHSEED"] == alt["PYTHONHASHSEED"] == "0"     # the hash seed decides more than rounding
    if cli_common._cpu_has_avx2():
        for key in ("ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA"):
            assert pinned[key] == PINNED_NUMERICS[key] != alt[key] == ALT_NUMERICS[key], key
    else:   # the AVX2 kernels would fault on this CPU: not pinned
        assert "ATEN_CPU_CAPABILITY" not in pinned and "OPENBLAS_CORETYPE" not in pinned
    assert set(pinned) <= set(DETERMINISTIC_ENV)
    assert deterministic_env({"LANDSCAPE_NUMERICS": "pinned"}) == pinned == deterministic_env({"LANDSCAPE_NUMERICS": ""})


def test_a_bad_numerics_value_is_one_line_and_exit_2():
    env = dict(os.environ, PYTHONPATH=str(REPO), LANDSCAPE_NUMERICS="fast")
    env.pop("LANDSCAPE_NO_REEXEC", None)
    res = subprocess.run([sys.executable, "-m", "analyses.cli", "theorems", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "LANDSCAPE_NUMERICS='fast'" in res.stderr


def test_the_alt_words_for_env_hold_no_spaces():
    """`.ci/run` passes `python3 -m analyses.cli_common`'s output to `env` unquoted."""
    res = subprocess.run([sys.executable, "-m", "analyses.cli_common"], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    words = dict(w.split("=", 1) for w in res.stdout.split())
    assert words == {**deterministic_env({"LANDSCAPE_NUMERICS": "alt"}), "LANDSCAPE_NUMERICS": "alt"}


def test_roundoff_convention_doctests():
    assert doctest.testmod(roundoff).failed == 0


@pytest.mark.parametrize("x", [1.3e-8, 2e-8, 9.2e-3, 0.999, 1.0, 7.000000001e5])
def test_nice_up_is_the_smallest_one_digit_number_not_below(x):
    b = roundoff.nice_up(x)
    k = math.floor(math.log10(b))
    assert b >= x and float(f"{b:.0e}") == b            # one significant digit
    assert b - 10.0 ** k < x or b == 10.0 ** k          # the next one-digit number down is below x


def test_bound_writes_the_floor_within_its_multiple_and_drops_digits_below_it():
    assert roundoff.bound(-2.9e-13, 1e-13, 3) == {"at_most": 3e-13}            # |x| ≤ B: the sign is round-off too
    assert roundoff.bound(3.1e-13, 1e-13, 3) == 3e-13                            # above B: rounded to B's decade
    assert roundoff.bound(7.654321, 1e-13, 10) == pytest.approx(7.654321, abs=1e-12)
    assert roundoff.bound(None, 1.0) is None and math.isnan(roundoff.bound(float("nan"), 1.0))
    with pytest.raises(ValueError):
        roundoff.bound(1.0, 0.0)
    # values that differ below the floor are written the same (away from a rounding boundary)
    assert roundoff.bound(1.2098918e-09, 1e-13, 10) == roundoff.bound(1.2098901e-09, 1e-13, 10)
    assert roundoff.upper({"at_most": 2e-8}) == 2e-8 and roundoff.upper(-3.0) == 3.0
