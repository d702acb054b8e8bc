"""Loss terms and the population Adam against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import poisson

from lfadskit.lfads import LFADSConfig
from lfadskit.lfads.objective import (
    kl_inferred_inputs,
    kl_initial_condition,
    l2_penalty,
    masked_poisson_nll,
    poisson_nll,
    ramp_weight,
)
from lfadskit.lfads.optim import PopulationAdam, copy_member, member_grad_norm


def test_masked_poisson_nll_matches_scipy_and_skips_nan_and_unmasked():
    g = torch.Generator().manual_seed(0)
    log_rates = torch.randn(2, 3, 4, 5, generator=g)
    counts = torch.poisson(torch.full((3, 4, 5), 2.0), generator=g)
    counts[0, 0, 0] = float("nan")
    mask = torch.rand(2, 3, 4, 5, generator=g) < 0.5
    got = masked_poisson_nll(log_rates, counts, mask)
    for k in range(2):
        use = mask[k] & ~torch.isnan(counts)
        ref = -poisson.logpmf(counts[use].numpy(), np.exp(log_rates[k][use].numpy())).mean()
        assert got[k].item() == pytest.approx(ref, rel=1e-5)


def test_masked_poisson_nll_gradient_equals_autograd_of_the_plain_expression():
    g = torch.Generator().manual_seed(4)
    log_rates = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.double, requires_grad=True)
    counts = torch.poisson(torch.full((2, 4, 5), 1.5, dtype=torch.double), generator=g)
    counts[1, 2, 3] = float("nan")
    mask = torch.rand(3, 2, 4, 5, generator=g) < 0.6
    weights = torch.tensor([0.5, -1.0, 2.0], dtype=torch.double)
    got = torch.autograd.grad(
        (masked_poisson_nll(log_rates, counts, mask) * weights).sum(), log_rates
    )
    use = mask & ~torch.isnan(counts)
    clean = torch.nan_to_num(counts)
    plain = torch.where(use, poisson_nll(log_rates, clean), 0.0).sum(dim=(1, 2, 3))
    ref = torch.autograd.grad((plain / use.sum(dim=(1, 2, 3)) * weights).sum(), log_rates)
    assert torch.allclose(got[0], ref[0], atol=1e-12)
    assert torch.equal(got[0][~use], torch.zeros_like(got[0][~use]))  # exactly zero
    assert torch.autograd.gradcheck(lambda lr: masked_poisson_nll(lr, counts, mask), (log_rates,))


def test_kl_initial_condition_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean, std = torch.randn(3, 6, 4, generator=g), torch.rand(3, 6, 4, generator=g) + 0.1
    prior_mean = torch.randn(3, 4, generator=g)
    got = kl_initial_condition(mean, std, prior_mean, 0.1)
    q = torch.distributions.Normal(mean, std)
    p = torch.distributions.Normal(prior_mean[:, None, :], math.sqrt(0.1))
    ref = torch.distributions.kl_divergence(q, p).sum(-1).mean(1)
    assert torch.allclose(got, ref, rtol=1e-5)


def test_kl_inferred_inputs_is_log_q_minus_log_ar1_prior():
    g = torch.Generator().manual_seed(2)
    k, b, t, d = 2, 3, 7, 2
    mean, std = torch.randn(k, b, t, d, generator=g), torch.rand(k, b, t, d, generator=g) + 0.2
    u = mean + std * torch.randn(k, b, t, d, generator=g)
    log_tau, log_var = torch.randn(k, d, generator=g), torch.randn(k, d, generator=g)
    got = kl_inferred_inputs(u, mean, std, log_tau, log_var)
    ref = torch.zeros(k)
    for m in range(k):
        tau, var = math.e ** log_tau[m], math.e ** log_var[m]
        alpha = torch.exp(-1.0 / tau)
        total = 0.0
        for trial in range(b):
            for step in range(t):
                q = torch.distributions.Normal(mean[m, trial, step], std[m, trial, step])
                if step == 0:
                    p = torch.distributions.Normal(torch.zeros(d), var.sqrt())
                else:
                    prev = u[m, trial, step - 1]
                    p = torch.distributions.Normal(alpha * prev, (var * (1 - alpha**2)).sqrt())
                x = u[m, trial, step]
                total += (q.log_prob(x) - p.log_prob(x)).sum()
        ref[m] = total / b
    assert torch.allclose(got, ref, rtol=1e-4)


def test_l2_penalty_is_scaled_mean_square_of_recurrent_kernels():
    params = {
        "gen.w_hh": torch.full((2, 3, 9), 2.0),
        "con.w_hh": torch.full((2, 2, 6), 1.0),
        "gen.w_u": torch.full((2, 4, 9), 100.0),
    }  # not recurrent: not penalized
    scales = {"l2_gen_scale": torch.tensor([1.0, 0.5]), "l2_con_scale": torch.tensor([2.0, 0.0])}
    got = l2_penalty(params, scales)
    # 0.5 * ||W||^2 / numel: gen 0.5 * 4 = 2 per element mean, con 0.5 * 1
    assert torch.allclose(got, torch.tensor([1.0 * 2 + 2.0 * 0.5, 0.5 * 2 + 0.0]))


def test_ramp_weight_hand_values():
    assert [ramp_weight(e, 0, 3) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert [ramp_weight(e, 2, 1) for e in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert ramp_weight(0, 0, 0) == 1.0


def test_population_adam_matches_torch_adam_per_member():
    g = torch.Generator().manual_seed(3)
    targets = torch.randn(3, 4, 5, generator=g)
    lrs = torch.tensor([1e-2, 3e-3, 5e-2])
    params = {"w": torch.zeros(3, 4, 5, requires_grad=True)}
    opt = PopulationAdam(params, eps=1e-8, grad_clip=1e9)
    refs = [torch.zeros(4, 5, requires_grad=True) for _ in range(3)]
    ref_opts = [torch.optim.Adam([r], lr=lrs[k].item(), eps=1e-8) for k, r in enumerate(refs)]
    for _ in range(20):
        loss = ((params["w"] - targets) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, [params["w"]])
        opt.step({"w": grad}, lrs, torch.ones(3, dtype=torch.bool))
        for k in range(3):
            ref_opts[k].zero_grad()
            ((refs[k] - targets[k]) ** 2).sum().backward()
            ref_opts[k].step()
    for k in range(3):
        assert torch.allclose(params["w"][k], refs[k], atol=1e-6)


def test_gradient_clip_is_per_member():
    params = {
        "a": torch.zeros(2, 3, requires_grad=True),
        "b": torch.zeros(2, 4, requires_grad=True),
    }
    grads = {
        "a": torch.tensor([[3.0, 0, 0], [0.3, 0, 0]]),
        "b": torch.tensor([[4.0, 0, 0, 0], [0.4, 0, 0, 0]]),
    }
    assert torch.allclose(member_grad_norm(grads), torch.tensor([5.0, 0.5]))
    opt = PopulationAdam(params, grad_clip=1.0)
    opt.step(grads, torch.tensor([0.1, 0.1]), torch.ones(2, dtype=torch.bool))
    # Adam's first moment stores the clipped gradient: member 0 scaled to norm 1, member 1 not
    m_a = opt.state["m.a"] / 0.1  # (1 - beta1) = 0.1
    assert torch.allclose(m_a[0], torch.tensor([0.6, 0, 0]), atol=1e-6)
    assert torch.allclose(m_a[1], torch.tensor([0.3, 0, 0]), atol=1e-6)


def test_inactive_members_and_nan_gradients_do_not_update():
    params = {"w": torch.ones(3, 2, requires_grad=True)}
    opt = PopulationAdam(params)
    grads = {"w": torch.tensor([[1.0, 1.0], [float("nan"), 1.0], [1.0, 1.0]])}
    opt.step(grads, torch.full((3,), 0.1), torch.tensor([True, True, False]))
    assert not torch.equal(params["w"][0], torch.ones(2))
    assert torch.equal(params["w"][1:], torch.ones(2, 2))
    assert opt.state["step"].tolist() == [1, 0, 0]
    assert bool(torch.isfinite(opt.state["m.w"]).all())


def test_copy_member_copies_weights_and_optimizer_state():
    params = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)}
    opt = PopulationAdam(params)
    opt.step(
        {"w": torch.tensor([[1.0, 1.0], [-1.0, 2.0]])},
        torch.tensor([0.1, 0.1]),
        torch.tensor([True, False]),
    )
    copy_member(params, opt, src=0, dst=1)
    assert torch.equal(params["w"][1], params["w"][0])
    for name in ("m.w", "v.w", "step"):
        assert torch.equal(opt.state[name][1], opt.state[name][0])


def test_config_validation_and_dict_round_trip():
    cfg = LFADSConfig(gen_dim=32, cd_rate=0.5)
    assert LFADSConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown LFADSConfig field.*valid names"):
        LFADSConfig.from_dict({"gen_size": 3})
    with pytest.raises(ValueError, match="cd_rate"):
        LFADSConfig(cd_rate=1.0)
    with pytest.raises(ValueError, match="gen_dim"):
        LFADSConfig(gen_dim=0)
    with pytest.raises(ValueError, match="selection_metric"):
        LFADSConfig(selection_metric="sv_nll")  # needs sv_rate > 0
    with pytest.raises(ValueError, match="lr"):
        LFADSConfig(lr=float("nan"))
