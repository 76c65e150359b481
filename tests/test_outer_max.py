"""devarg's max-times product (:mod:`landscape.outer_max`) against a per-example reference written
out loop by loop: the same maximiser (lowest index on ties) and the same float64 product, bit for
bit (signed zeros included), with either kernel (the compiled numba loop, the blocked torch one)
and whatever the torch kernel's block size."""
from __future__ import annotations

import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import landscape.outer_max as om


def _reference(A: torch.Tensor, B: torch.Tensor) -> list[list[float]]:
    """For each (o, k): scan the examples in order, keep the first of the largest |b_io·a_ik|."""
    n, n_in = A.shape
    out = []
    for o in range(B.shape[1]):
        row = []
        for k in range(n_in):
            best, val = -1.0, 0.0
            for i in range(n):
                p = float(B[i, o]) * float(A[i, k])   # Python floats: IEEE double, as torch's float64
                if abs(p) > best:
                    best, val = abs(p), p
            row.append(val)
        out.append(row)
    return out


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


# values drawn from a small set so that ties (equal |products|, zeros of both signs) are common
_VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -3.0, 1e-300, -1e-300])


@st.composite
def _layers(draw):
    n = draw(st.integers(1, 12))
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    mixed = draw(st.booleans())
    vals = _VALUES if not mixed else st.one_of(_VALUES, st.floats(-5, 5, allow_nan=False, width=64))
    A = torch.tensor(draw(st.lists(st.lists(vals, min_size=n_in, max_size=n_in), min_size=n, max_size=n)),
                     dtype=torch.float64)
    B = torch.tensor(draw(st.lists(st.lists(vals, min_size=n_out, max_size=n_out), min_size=n, max_size=n)),
                     dtype=torch.float64)
    return A, B


KERNELS = ["numba", "torch"]


@settings(max_examples=150, deadline=None)
@given(_layers(), st.sampled_from([1, 3, 7, 1 << 16]), st.sampled_from(KERNELS))
def test_signed_max_equals_the_loop_bit_for_bit(layer, block, kernel):
    A, B = layer
    old = om.BLOCK_ELEMS
    om.BLOCK_ELEMS = block          # blocks of one product, of a few, of everything (torch kernel)
    try:
        absmax, signed = om.outer_signed_max(A, B, kernel=kernel)
    finally:
        om.BLOCK_ELEMS = old
    ref = _reference(A, B)
    for o, row in enumerate(ref):
        for k, v in enumerate(row):
            assert _bits(float(signed[o, k])) == _bits(v), (o, k, float(signed[o, k]), v)
            assert _bits(float(absmax[o, k])) == _bits(abs(v))


@pytest.mark.parametrize("kernel", KERNELS)
def test_first_example_wins_a_tie_of_opposite_signs(kernel):
    # |(+2)(1)| = |(−1)(−2)| = |(2)(−1)|: three examples tie; the first one's signed product is kept
    A = torch.tensor([[1.0], [-2.0], [-1.0]], dtype=torch.float64)
    B = torch.tensor([[2.0], [-1.0], [2.0]], dtype=torch.float64)
    assert om.outer_signed_max(A, B, kernel=kernel)[1].item() == 2.0
    assert om.outer_signed_max(A.flip(0), B.flip(0), kernel=kernel)[1].item() == -2.0


@pytest.mark.parametrize("kernel", KERNELS)
def test_no_example_gives_minus_one_and_zero(kernel):
    absmax, signed = om.outer_signed_max(torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64),
                                         kernel=kernel)
    assert absmax.shape == (2, 3) and bool((absmax == -1).all()) and bool((signed == 0).all())


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n, n_in, n_out", [(1797, 64, 8), (300, 7, 5)])
def test_larger_layers_match_a_leading_axis_reduction(n, n_in, n_out, kernel):
    """On layer sizes of the plateau study, against the direct reduction over a leading example axis
    (torch's max returns the first maximal index)."""
    g = torch.Generator().manual_seed(n)
    A = torch.randint(0, 17, (n, n_in), generator=g).double()        # digits-like: many equal pixels
    B = torch.randn(n, n_out, generator=g, dtype=torch.float64) * (torch.rand(n, n_out, generator=g) < 0.5)
    P = B[:, :, None] * A[:, None, :]
    arg = P.abs().max(0).indices
    want = P.gather(0, arg[None]).squeeze(0)
    got = om.outer_signed_max(A, B, kernel=kernel)[1]
    assert torch.equal(got.view(torch.int64), want.view(torch.int64))


def test_kernel_choice_and_bad_kernel():
    finite = torch.ones(3, 2, dtype=torch.float64)
    assert om.kernel_for(finite, finite) == "numba"                  # numba is a dependency
    assert om.kernel_for(finite.float(), finite.float()) == "torch"   # only float64 goes to the loop
    assert om.kernel_for(finite, finite * float("inf")) == "torch"    # torch's max keeps a NaN/inf
    with pytest.raises(ValueError, match="kernel must be"):
        om.outer_signed_max(finite, finite, kernel="cuda")
