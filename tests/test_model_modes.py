"""The model's own mode weights by annealed importance sampling (paper 003 Sec. 4.2:
model error vs sampler error; ebm_bench/evaluation/model_modes.py)."""

import math

import torch

from ebm_bench.samplers.ais import ais


def mixture_energy(mass_a, a=-3.0, b=3.0):
    """U(x) = -log(mass_a N(x; a e1, I) + (1 - mass_a) N(x; b e1, I)) (unnormalised by (2 pi)^{d/2})."""
    def energy(x):
        x1 = x[:, 0]
        rest = (x[:, 1:] ** 2).sum(1)
        la = math.log(mass_a) - 0.5 * (x1 - a) ** 2
        lb = math.log(1 - mass_a) - 0.5 * (x1 - b) ** 2
        return -torch.logaddexp(la, lb) + 0.5 * rest
    return energy


def test_ais_weights_recover_the_mass_that_unweighted_chains_miss():
    """Two separated modes with mass 0.2 / 0.8: the weighted AIS end points give mass 0.2 on
    mode a and the exact log Z; unweighted annealed chains split by where they fell."""
    d = 4
    gen = torch.Generator().manual_seed(0)
    res = ais(mixture_energy(0.2, -4.0, 4.0), (d,), 2000, 100, 1.0, 0.3, gen, base_std=1.0, power=2.0)
    on_a = (res.x[:, 0] < 0).double()
    p = torch.softmax(res.log_w, 0)
    mass = float((p * on_a).sum())
    assert abs(mass - 0.2) < 0.04, mass
    assert abs(res.log_z - 0.5 * d * math.log(2 * math.pi)) < 0.1, res.log_z
    assert res.ess > 0.2 and 0.2 < res.accept <= 1.0
    assert abs(float(on_a.mean()) - 0.2) > 2 * abs(mass - 0.2)  # the weights did the work


def test_ais_at_a_temperature():
    """exp(-U/T) of U = |x|^2 / 2 is N(0, T I): log Z = d/2 log(2 pi T), variance T."""
    d, temperature = 3, 0.05
    gen = torch.Generator().manual_seed(1)
    res = ais(lambda x: 0.5 * (x**2).sum(1), (d,), 2000, 100, temperature, 0.5 * temperature, gen, base_std=1.0, power=2.0)
    assert abs(res.log_z - 0.5 * d * math.log(2 * math.pi * temperature)) < 0.1  # MC error ~0.03
    p = torch.softmax(res.log_w, 0).float()
    var = float((p[:, None] * res.x**2).sum(0).mean())
    assert abs(var / temperature - 1) < 0.15
