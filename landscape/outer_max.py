"""devarg's signed per-coordinate max-magnitude over examples for a layer whose per-example gradient
is an outer product g_i = b_i a_iᵀ (an ``nn.Linear``'s weight): M_ok = max_i |b_io|·|a_ik| and the
signed b_{i*o}·a_{i*k} at the first maximiser i* (lowest example index on ties).

That is a max-times product, not a matrix product: n·out·in multiplications whatever the order.
What decides the cost is the memory layout: with the examples last the products of one (o, k)
are contiguous and the max runs along memory (4–5× faster on one core than reducing over a
leading example axis, measured on the digits autoencoder's 1 797 × 64 × 32 layer), blocks of at
most 2^16 products stay in cache, and the products are formed once, of the magnitudes
(fl(|b|·|a|) = |fl(b·a)|), the signed one only at the maximiser.
"""
from __future__ import annotations

import torch

#: products per block (512 KiB of float64)
BLOCK_ELEMS = 1 << 16


def outer_signed_max(A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """max_i |B_io·A_ik| and the signed B_{i*o}·A_{i*k}, i* the first maximiser (lowest index on
    ties; every value is the one float64 product B_{i*o}·A_{i*k}, signed zeros included).

    Args:
        A: (n, n_in) float64, the layer inputs. B: (n, n_out) float64, the output gradients.

    Returns:
        (absmax, signed), each (n_out, n_in) float64; with no example, absmax −1 (no |g| can be)
        and signed 0.

    Example:
        >>> import torch
        >>> A = torch.tensor([[1.0], [-3.0]], dtype=torch.float64); B = torch.tensor([[2.0], [1.0]], dtype=torch.float64)
        >>> [t.tolist() for t in outer_signed_max(A, B)]
        [[[3.0]], [[-3.0]]]
    """
    n, n_in = A.shape
    n_out = B.shape[1]
    if n == 0:
        return (torch.full((n_out, n_in), -1.0, dtype=A.dtype, device=A.device),
                torch.zeros(n_out, n_in, dtype=A.dtype, device=A.device))
    At, Bt = A.T.contiguous(), B.T.contiguous()      # examples last
    aAt, aBt = At.abs(), Bt.abs()                     # fl(|b|·|a|) = |fl(b·a)|: no abs of the products
    kc = max(1, min(n_in, BLOCK_ELEMS // n))          # inputs per block
    oc = max(1, BLOCK_ELEMS // (kc * n))              # outputs per block
    arg = torch.empty(n_out, n_in, dtype=torch.long, device=A.device)
    for o in range(0, n_out, oc):
        for k in range(0, n_in, kc):
            P = aBt[o:o + oc, None, :] * aAt[None, k:k + kc, :]     # (oc, kc, n)
            arg[o:o + oc, k:k + kc] = P.max(-1).indices            # first maximal index on ties
    signed = Bt.gather(1, arg) * At.gather(1, arg.T).T               # the product at i*, once
    return signed.abs(), signed
