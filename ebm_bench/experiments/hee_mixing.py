"""How fast HEE's inference readings reach the posterior (paper 000 supp. Eq. 4-13, issue 13):
``ebm-bench hee-mixing [--quick]`` prints the tables docs/hee.md quotes.

Exact where the model is linear (:mod:`ebm_bench.evaluation.hee_moments`: moments of the
Euler-Maruyama recursion, no Monte Carlo), simulated chains for the nonlinear model.
"""

from __future__ import annotations

import torch

from ebm_bench.evaluation.hee_moments import READINGS, first_below, hee_linear_posterior, hee_mixing
from ebm_bench.methods.base import DataInfo


def run(quick: bool = False) -> None:
    """HEE (paper 000 supp. Eq. 4-13): simulated time until first- and second-order inference
    reach the posterior, side by side in one run.

    (1) HEE-L at the 2D-synthetic setting of supp. Table 1 (L = 5, n_l = 10, tau_z =
    linspace(1, 10), dt = 0.01, tau_v = 0.5 tau_z, m = 0.5), random weights, one data
    point: the recursion is linear, so the mean and covariance of the chains after every EM
    step are computed exactly (no Monte Carlo). Errors: RMS over latent units of
    |E z_t - mu| / sd (posterior sd units) and the relative Frobenius distance of Cov z_t
    to the recursion's own stationary covariance. (2) The nonlinear (tanh) model with
    interneurons, simulated chains: RMS error of the chain mean against a long-run
    reference (both orders' chains, time-averaged over the second half). The wall time per
    EM step of each order is a benchmark: ``ebm-bench bench hee_em_step``."""
    from ebm_bench.methods.hee import HEE

    info = DataInfo((2,), False)
    g = torch.Generator().manual_seed(0)
    base = {"layers": [10] * 5, "weight_init": 1.0, "tau_z": [1.0, 10.0], "dt": 0.01}
    x0 = torch.tensor([[1.0, -0.5]], dtype=torch.float64)

    # (1) exact moments, HEE-L
    lin = HEE({**base, "nonlinearity": "linear", "interneurons": False}, info, "cpu", 0)
    lin.W = [w.double() for w in lin.W]
    lin.bias = (0.5 * torch.randn(lin.N, generator=g)).double()
    lin.lam = lin.lam.double()
    H, c = hee_linear_posterior(lin, x0)
    tau = lin.tau_vec[lin.sizes[0]:].double()
    T = 60.0 if quick else 150.0
    print(f"HEE-L posterior, supp. Table 1 2D setting (L=5, n_l=10, tau_z=linspace(1,10), dt=0.01 tau_x), "
          f"exact moments of the EM recursion over {T:g} tau_x; z0 ~ N(0, I)")
    res = hee_mixing(H, c, tau, lin.dt, horizon=T)
    first = res["first-order"]
    cols = ["t_mean_0.1", "t_mean_0.01", "t_cov_5%", "t_cov_1%", "iact_slow"]
    print("  " + f"{'reading':38s}" + "".join(f"{k:>13s}" for k in cols) + f"{'cov bias':>10s}   (tau_x; speed-up vs first order)")
    for label, r in res.items():
        print("  " + f"{label:38s}" + "".join(f"{r[k]:7.2f} x{first[k] / r[k]:4.2f}" for k in cols)
              + f"{100 * r['cov_bias']:9.2f}%")
    for dt in (0.02, 0.01, 0.005):
        b = hee_mixing(H, c, tau, dt, horizon=1.0, readings={k: READINGS[k] for k in
                                                             ("first-order", "literal, v0 = 0", "driven, v0 = 0")})
        print(f"  O(dt) bias of the stationary covariance at dt = {dt:g}: "
              + ", ".join(f"{k.split(',')[0]} {100 * v['cov_bias']:.2f}%" for k, v in b.items()))

    # (2) nonlinear model with interneurons, simulated chains
    n_chain = 500 if quick else 2000
    T2 = 20.0 if quick else 60.0
    n2 = int(round(T2 / 0.01))
    nl = HEE({**base, "nonlinearity": "tanh", "interneurons": True}, info, "cpu", 0)
    nl.bias = 0.5 * torch.randn(nl.N, generator=g)
    xb = x0.float().expand(n_chain, -1)
    traj, tails = {}, []
    kinds = {"first-order": (1, "literal"), "literal": (2, "literal"), "driven": (2, "driven")}
    for i, (order, adaptation) in enumerate(kinds.values()):
        nl.params["order"], nl.params["adaptation"] = order, adaptation
        mean_t: list[torch.Tensor] = []
        acc = {"sum": 0.0, "sq": 0.0, "n": 0}

        def rec(step, X, mean_t=mean_t, acc=acc):
            z = X[:, nl.sizes[0]:]
            mean_t.append(z.mean(0).double())
            if step > n2 // 2:
                acc["sum"] = acc["sum"] + z.double().sum(0)
                acc["sq"] = acc["sq"] + z.double().pow(2).sum(0)
                acc["n"] += z.shape[0]

        nl.simulate(xb, n2, torch.Generator().manual_seed(10 + i), mode="infer", record=rec)
        traj[i] = mean_t
        tails.append(acc)
    tot = sum(a["n"] for a in tails)
    ref = sum(a["sum"] for a in tails) / tot
    sd2 = torch.sqrt(sum(a["sq"] for a in tails) / tot - ref ** 2)
    print(f"tanh HEE with interneurons (tau_u = 0.1), {n_chain} chains, {T2:g} tau_x; reference = all readings' "
          f"chains averaged over the second half")
    errs = {i: [float(((mt - ref) / sd2).pow(2).mean().sqrt()) for mt in traj[i]] for i in traj}
    floor = 1.0 / n_chain ** 0.5
    for tol in (0.2, 0.1):
        t = [first_below(errs[i], tol, 0.01) for i in range(len(kinds))]
        print(f"  mean within {tol:g} sd (RMS; MC floor ~{floor:.3f}): "
              + "   ".join(f"{k} {ti:7.2f} tau_x (x{t[0] / ti:.2f})" for k, ti in zip(kinds, t)))
