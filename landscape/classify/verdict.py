"""The verdict at a degenerate critical point: what the higher-order probe's result says.

:func:`unresolved_directions` counts the probed directions that neither rise nor fall beyond the
probe's threshold; :func:`decide_degenerate` turns the probe (:mod:`landscape.classify.degenerate`)
into a kind. The rule that keeps it from being confidently wrong: a minimum needs a resolved rise
along every probed direction (a maximum a resolved fall); with any direction unresolved (descent
neither found nor excluded within the probe's resolution) the kind is ``inconclusive``, with the
reason.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import NonFiniteError
from ..probe import ProbeResult
from .degenerate import signed_escape, value_and_grad_batch
from .report import Verdict

if TYPE_CHECKING:  # pragma: no cover
    from ..objective import Objective


# ---------------------------------------------------------------------------- the verdict
def unresolved_directions(obj: "Objective", theta: torch.Tensor, pr: ProbeResult, seed: int) -> int:
    """How many probed signed directions neither rise nor fall beyond the probe's threshold.

    Counted over every part of the probe (``pr.parts``: the lines along near-null eigenvectors,
    their random combinations and random full-space directions, the sphere search, the reduced
    function, the layer-product directions), except two kinds of direction that are resolved as
    *level*: a line along which the loss is bit-for-bit constant and the gradient exactly zero at
    the probed radii (a dead unit's weights; :func:`gradient_vanishes_nearby`'s rule — a constant
    loss alone can be an offset's rounding), and a reduced-function curve that stays within the
    round-off of the loss at every radius (a valley of equal loss such as a symmetry orbit of a
    minimum; its straight line rises at 4th order and is counted with the lines).

    Args:
        obj: the objective. theta: the point (dim,). pr: the merged probe. seed: seeds nothing here
            (kept for the gradient check's signature).

    Returns:
        The number of unresolved signed directions (0: every direction resolved).

    Example: :func:`landscape.classify_point` turns a "minimum" with unresolved directions into
    ``inconclusive`` (x⁴ + 1e-30·y² at 0 has y unresolved; see tests/test_classify_strict.py).
    """
    total = 0
    for name, part in pr.parts.items():
        if name == "weak_span":  # looks for descent only (its directions are resolved by their eigenvalue)
            continue
        n = int(part["n_unresolved"])
        if name == "reduced":
            n -= int(part["n_roundoff_flat"])
        total += n
    if total and pr.n_exact_flat and pr.exact_flat_directions is not None:
        level = _gradient_zero_along(obj, theta, pr.exact_flat_directions, pr.radii)
        total -= int(level.sum())
    return max(total, 0)


def _gradient_zero_along(obj: "Objective", theta: torch.Tensor, D: torch.Tensor, radii: list[float]) -> torch.Tensor:
    """Per row of ``D`` (k, dim): is the gradient exactly zero at θ + t·d for every fourth radius t?"""
    ts = torch.tensor(radii[::4] + [radii[-1]], dtype=obj.dtype, device=obj.device)
    P = theta.unsqueeze(0).unsqueeze(0) + ts.view(1, -1, 1) * D.to(theta).unsqueeze(1)  # (k, r, dim)
    try:
        _, G = value_and_grad_batch(obj)(P.reshape(-1, obj.dim))
    except NonFiniteError:
        return torch.zeros(D.shape[0], dtype=torch.bool)
    return (G.reshape(D.shape[0], ts.numel(), -1) == 0).all(2).all(1).cpu()


def decide_degenerate(pr: ProbeResult, has_neg: bool, has_pos: bool, evecs: torch.Tensor, g: torch.Tensor,
                      notes: list[str], *, flat: bool = False, unresolved: int = 0) -> Verdict:
    """The kind of a degenerate critical point from its probe.

    Args:
        pr: the probe around the point. has_neg / has_pos: negative / positive eigenvalues beyond the band.
        evecs: the eigenvectors (dim, m), ascending (the first is λ_min's). g: the gradient (dim,).
        notes: receives the reason for the verdict.
        flat: the loss is bit-for-bit constant on every probed point and the gradient exactly zero
            on a sample of them (:func:`gradient_vanishes_nearby`).
        unresolved: probed signed directions that neither rise nor fall beyond the threshold
            (:func:`unresolved_directions`). The strict reading of "never confidently wrong": a
            minimum needs a resolved rise along every probed direction (a maximum a resolved fall);
            with any unresolved, "no descent found" is not a verdict and the kind is ``inconclusive``.

    Returns:
        The verdict (kind, escape direction, probe order and radius; the probe itself attached).

    Example: every degenerate verdict of :func:`landscape.classify_point` comes from here.
    """
    if has_neg:
        # NSD with a null space: a maximum unless some direction ascends.
        if pr.ascent or has_pos:
            notes.append(f"negative curvature plus higher-order ascent (order ≈ {pr.ascent_order}) "
                         f"at radius {pr.ascent_radius:.3g}")
            return Verdict("strict_saddle", escape_direction=signed_escape(evecs[:, 0].clone(), g),
                           probe_order=pr.ascent_order, probe_radius=pr.ascent_radius, probe=pr)
        if unresolved:
            return _unresolved_verdict(pr, unresolved, "maximum", "ascent", notes)
        notes.append(f"degenerate maximum: no ascent found within radius {pr.max_radius:.3g}")
        return Verdict("maximum", probe_radius=pr.max_radius, probe=pr)
    if pr.descent and (pr.ascent or has_pos):
        notes.append(f"no negative eigenvalue, but the loss decreases at order ≈ "
                     f"{_fmt(pr.descent_order)} along a near-null direction (radius {pr.descent_radius:.3g})")
        return Verdict("non_strict_saddle", escape_direction=pr.descent_direction, probe_order=pr.descent_order,
                       probe_radius=pr.descent_radius, probe=pr)
    if pr.descent:
        if unresolved:
            return _unresolved_verdict(pr, unresolved, "maximum", "ascent", notes)
        notes.append(f"degenerate maximum: every probed direction descends (order ≈ {_fmt(pr.descent_order)}), "
                     f"no ascent within radius {pr.max_radius:.3g}")
        return Verdict("maximum", probe_order=pr.descent_order, probe_radius=pr.max_radius, probe=pr)
    if (pr.ascent or has_pos) and unresolved and not flat:
        return _unresolved_verdict(pr, unresolved, "minimum", "descent", notes)
    if pr.ascent or has_pos:
        notes.append(f"degenerate minimum: no descent found within radius {pr.max_radius:.3g}"
                     + (f" (near-null directions rise at order ≈ {_fmt(pr.ascent_order)})" if pr.ascent else ""))
        return Verdict("minimum", probe_order=pr.ascent_order, probe_radius=pr.max_radius, probe=pr)
    if flat:
        # Locally constant (e.g. every ReLU unit dead): f(θ') = f(θ) bit for bit on every probed point
        # and ∇f = 0 exactly there, so f(θ) ≤ f(θ') — a minimum in the weak (non-strict) sense (and a weak maximum).
        notes.append(f"flat minimum: the loss is exactly constant (bit-identical) on all {pr.n_evals} probed points "
                     f"and the gradient exactly zero on a sample of them, within radius {pr.max_radius:.3g}: no "
                     "change found on any probed point (a change confined to a narrow cone could be missed)")
        return Verdict("minimum", probe_radius=pr.max_radius, probe=pr)
    notes.append(f"the loss is flat along every probed direction within radius {pr.max_radius:.3g}: its change stays "
                 "below the probe's resolution (round-off, the loss gap to the nearby critical point, "
                 "the unresolved curvature band): neither descent nor ascent found")
    return Verdict("inconclusive", probe_radius=pr.max_radius, probe=pr)


def _unresolved_verdict(pr: ProbeResult, unresolved: int, kind: str, missing: str, notes: list[str]) -> Verdict:
    """``inconclusive``: the probe found no {missing}, but some probed directions are flat within its resolution."""
    n_signed = sum(int(p.get("n_signed", 2 * p["n_directions"])) for p in pr.parts.values()) or 2 * pr.n_directions
    reason = (f"no {missing} found within radius {pr.max_radius:.3g}, but {unresolved} of {n_signed} probed signed "
              f"directions neither rise nor fall beyond the probe's threshold (up to {pr.threshold_at_max:.3g} at that "
              f"radius: round-off, the loss gap to the nearby critical point, the unresolved curvature band): "
              f"{kind} or saddle is beyond the probe's resolution there")
    notes.append(reason)
    return Verdict("inconclusive", reason=reason, probe_radius=pr.max_radius, probe=pr)


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"
