"""The plateau cases' shared loop (analyses.plateaus.core) and the survey's plateau finder."""
import torch

from analyses.plateaus import autoencoder, icl, saddles
from analyses.plateaus.core import flat_params, load_flat, train
from analyses.plateaus.survey import find_plateaus


def test_build_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    for build in (autoencoder.build, saddles.build_linear, saddles.build_tanh, icl.build):
        a, b = build(4), build(4)
        assert torch.equal(flat_params(a.model), flat_params(b.model))
        assert not torch.equal(flat_params(a.model), flat_params(build(5).model))
    assert torch.equal(state, torch.random.get_rng_state())


def test_callback_sees_every_step_and_can_stop_the_run():
    inst = saddles.build_linear(0, steps=50)
    seen = []
    tr = train(inst, callback=lambda info: seen.append((info.step, info.loss, info.grad_norm)) or info.step == 20)
    assert [s for s, _, _ in seen] == list(range(1, 21)) and tr.stopped_early and tr.steps == 20
    theta = flat_params(inst.model)
    other = saddles.build_linear(1)
    load_flat(other.model, theta)
    assert torch.equal(flat_params(other.model), theta)


def test_find_plateaus_reads_flat_runs():
    steps = list(range(0, 1000, 10))
    vals = [1.0 if s < 300 else (0.5 if s < 700 else 0.1) for s in steps]
    p = find_plateaus(steps, vals, rel_rate=1e-4, min_len=100)
    assert [(q["start"], q["end"], q["median"]) for q in p] == [(10, 280, 1.0), (310, 680, 0.5), (710, 980, 0.1)]
