"""Digits ReLU autoencoder (analyses.plateaus.autoencoder): the mean-image loss and the plateau GD
sits on after its first drop."""
from torch import nn

from analyses.plateaus import autoencoder as ae
from analyses.plateaus.core import train


def test_mean_image_and_pca_losses():
    X = ae.images()
    assert X.shape == (1797, 64) and float(X.max()) == 1.0
    m = ae.mean_image_loss()
    assert abs(m - float(nn.MSELoss()(X.mean(0).expand_as(X), X))) < 1e-15
    pca = ae.pca_losses(r_max=2)
    assert abs(pca[0] - m) < 1e-12 and pca[0] > pca[1] > pca[2]
    assert abs(m - 0.0733324) < 1e-6 and abs(pca[1] - 0.0624128) < 1e-6


def test_gd_plateau_sits_just_below_the_mean_image_loss():
    """Seed 0, 64-32-8-32-64, GD lr 0.1: after the first drop (~300 steps) the loss creeps between
    0.99 and 0.975 × the mean-image loss (measured 0.0726 → 0.0722 over steps 300–600)."""
    inst = ae.build(0, steps=600)
    tr = train(inst, eval_every=100)
    m = inst.theory["mean_image"]
    for s, v in zip(tr.eval_steps, tr.eval_loss):
        if s >= 300:
            assert 0.975 * m < v < 0.995 * m, (s, v)
    assert tr.eval_loss[0] > 3 * m
