"""The LFADS network: GRU step, shapes, population independence, factor map, eval mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfadskit.lfads import LFADSConfig, infer
from lfadskit.lfads.layers import gru_step, gru_step_reference, run_gru, run_gru_unclipped
from lfadskit.lfads.network import Sizes, draw_noise, forward, init_params

TINY = dict(ic_enc_dim=6, ci_enc_dim=6, ic_dim=4, con_dim=6, co_dim=2, gen_dim=8, fac_dim=3)


def make(cfg, sizes, seeds):
    return init_params(cfg, sizes, [torch.Generator().manual_seed(s) for s in seeds])


def test_fused_gru_step_matches_plain_autograd_and_passes_gradcheck():
    g = torch.Generator().manual_seed(0)
    p, b, h = 3, 4, 5
    x = torch.randn(p, b, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    state = (2 * torch.randn(p, b, h, generator=g, dtype=torch.double)).requires_grad_()
    w = torch.randn(p, h, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    bias = torch.randn(p, 1, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    out = gru_step(x, state, w, bias, 1.5)
    ref = gru_step_reference(x, state, w, bias, 1.5)
    assert torch.allclose(out, ref, atol=1e-12)
    assert out.abs().max() <= 1.5 and (out.abs() == 1.5).any()  # the clip is active
    assert torch.autograd.gradcheck(lambda *a: gru_step(*a, 1.5), (x, state, w, bias))


def _stepwise(x, h0, w, bias, clip):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = gru_step_reference(x[:, t], h, w, bias.unsqueeze(1), clip)
        states.append(h)
    return torch.stack(states, dim=1)


def test_fused_step_without_clip_equals_clipped_step_when_the_clip_cannot_act():
    g = torch.Generator().manual_seed(1)
    p, b, h = 2, 3, 4
    x = torch.randn(p, b, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    state = torch.rand(p, b, h, generator=g, dtype=torch.double).requires_grad_()
    w = torch.randn(p, h, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    bias = torch.randn(p, 1, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    free, clipped = gru_step(x, state, w, bias, None), gru_step(x, state, w, bias, 1.0)
    assert torch.equal(free, clipped)
    for a, c in zip(
        torch.autograd.grad(free.sum(), (x, state, w, bias)),
        torch.autograd.grad(clipped.sum(), (x, state, w, bias)),
        strict=True,
    ):
        assert torch.allclose(a, c, atol=1e-14)
    assert torch.autograd.gradcheck(lambda *a: gru_step(*a, None), (x, state, w, bias))


def test_whole_sequence_gru_matches_the_stepwise_gru_and_passes_gradcheck():
    g = torch.Generator().manual_seed(2)
    p, t, b, h = 3, 6, 4, 5
    x = (3 * torch.randn(p, t, b, 3 * h, generator=g, dtype=torch.double)).requires_grad_()
    h0 = (2 * torch.rand(p, b, h, generator=g, dtype=torch.double) - 1).requires_grad_()
    w = torch.randn(p, h, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    bias = torch.randn(p, 3 * h, generator=g, dtype=torch.double, requires_grad=True)
    states = run_gru_unclipped(x, h0, w, bias)
    reference = _stepwise(x, h0, w, bias, 1.0)  # states stay in [-1, 1]: the clip never acts
    assert torch.allclose(states, reference, atol=1e-12)
    weights = torch.randn(states.shape, generator=g, dtype=torch.double)
    ours = torch.autograd.grad((states * weights).sum(), (x, h0, w, bias))
    theirs = torch.autograd.grad((reference * weights).sum(), (x, h0, w, bias))
    for a, c in zip(ours, theirs, strict=True):
        assert torch.allclose(a, c, atol=1e-12)
    assert torch.autograd.gradcheck(run_gru_unclipped, (x, h0, w, bias))
    # cell_clip None (the caller knows the clip cannot act) takes the same sequence node
    assert torch.equal(run_gru(x, h0, w, bias, None), states)


def test_run_gru_keeps_the_clip_when_it_can_act():
    g = torch.Generator().manual_seed(3)
    x = 4 * torch.randn(2, 5, 3, 12, generator=g)
    h0 = 3 * torch.ones(2, 3, 4)  # above a clip of 2: the first steps are clipped
    w, bias = torch.randn(2, 4, 12, generator=g), torch.randn(2, 12, generator=g)
    states = run_gru(x, h0, w, bias, cell_clip=2.0)
    assert torch.allclose(states, _stepwise(x, h0, w, bias, 2.0), atol=1e-6)
    assert states.abs().max() <= 2.0


def test_gru_matches_torch_gru_cell():
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(4, 5)
    x = torch.randn(7, 3, 4)
    # torch stores (3H, in) kernels with gate order (r, z, n), the same order as ours
    gates = (x @ cell.weight_ih.T + cell.bias_ih).unsqueeze(0)
    states = run_gru(
        gates,
        torch.zeros(1, 3, 5),
        cell.weight_hh.T.unsqueeze(0),
        cell.bias_hh.unsqueeze(0),
        cell_clip=100.0,
    )
    h = torch.zeros(3, 5)
    for t in range(7):
        h = cell(x[t], h)
        assert torch.allclose(states[0, t], h, atol=1e-6)


@pytest.mark.parametrize("co_dim", [0, 2])
@pytest.mark.parametrize("ci_enc_dim", [6, 5])
def test_output_shapes_with_heldout_neurons_forward_bins_and_ext_input(co_dim, ci_enc_dim):
    cfg = LFADSConfig(**{**TINY, "co_dim": co_dim, "ci_enc_dim": ci_enc_dim})
    sizes = Sizes(n_neurons_in=7, n_neurons_out=10, n_ext=2)
    params = make(cfg, sizes, [0, 1])
    x = torch.ones(5, 9, 7)
    out = forward(params, x, cfg, n_timesteps_out=12, ext_input=torch.ones(5, 9, 2))
    assert out["log_rates"].shape == (2, 5, 12, 10)
    assert out["factors"].shape == (2, 5, 12, 3)
    assert out["ic_mean"].shape == out["ic_std"].shape == (2, 5, 4)
    assert ("co_mean" in out) == (co_dim > 0)
    if co_dim:
        assert out["co_mean"].shape == (2, 5, 9, co_dim)
    assert bool(torch.isfinite(out["log_rates"]).all())


def test_members_are_independent_of_each_other():
    cfg = LFADSConfig(**TINY)
    sizes = Sizes(7, 9)
    both = make(cfg, sizes, [3, 4])
    alone = make(cfg, sizes, [4])
    for name in both:
        assert torch.equal(both[name][1], alone[name][0])
    x = torch.poisson(torch.full((5, 9, 7), 1.0), generator=torch.Generator().manual_seed(0))
    gens2 = [torch.Generator().manual_seed(s) for s in (10, 11)]
    gens1 = [torch.Generator().manual_seed(11)]
    dropout = torch.tensor([0.2, 0.4])
    noise2 = draw_noise(gens2, cfg, 5, 9, 11, 7, dropout)
    noise1 = draw_noise(gens1, cfg, 5, 9, 11, 7, dropout[1:])
    out2 = forward(both, x, cfg, 11, noise2)
    out1 = forward(alone, x, cfg, 11, noise1)
    assert torch.allclose(out2["log_rates"][1], out1["log_rates"][0], atol=1e-6)


def test_factor_map_has_unit_norm_rows():
    cfg = LFADSConfig(**TINY)
    params = make(cfg, Sizes(7, 9), [0])
    x = torch.ones(3, 6, 7)
    before = forward(params, x, cfg, 6)["factors"]
    with torch.no_grad():
        params["fac.w"].mul_(torch.tensor([3.0, 0.1, 7.0]))  # rescale each factor's row
    after = forward(params, x, cfg, 6)["factors"]
    assert torch.allclose(before, after, atol=1e-6)


def test_forward_bins_extend_the_window_without_changing_it():
    cfg = LFADSConfig(**TINY)
    params = make(cfg, Sizes(7, 9), [0])
    x = torch.ones(3, 6, 7)
    window = forward(params, x, cfg, 6)["log_rates"]
    longer = forward(params, x, cfg, 10)
    assert torch.allclose(longer["log_rates"][:, :, :6], window, atol=1e-6)
    assert longer["co_mean"].shape[2] == 6  # the controller runs only in the window


def test_eval_mode_is_deterministic_and_ignores_dropout():
    cfg = LFADSConfig(**TINY)
    params = make(cfg, Sizes(7, 9), [0])
    x = torch.ones(4, 6, 7)
    a = infer(params, cfg, x, 8, posterior_mean=True)
    b = infer(params, cfg.replace(dropout=0.5, cd_rate=0.5), x, 8, posterior_mean=True)
    for name in a:
        assert np.array_equal(a[name], b[name])
    direct = forward(params, x, cfg, 8)
    assert np.allclose(a["rates"][0], torch.exp(direct["log_rates"][0]).detach().numpy())


def test_sampled_inference_is_batched_seeded_and_averages_samples():
    cfg = LFADSConfig(**TINY)
    params = make(cfg, Sizes(7, 9), [0, 1])
    x = torch.poisson(torch.ones(5, 6, 7), generator=torch.Generator().manual_seed(0))
    a = infer(params, cfg, x, 8, n_samples=20, seed=3)
    b = infer(params, cfg, x, 8, n_samples=20, seed=3, max_batch=40)  # 2 trials per chunk
    assert np.array_equal(a["rates"], infer(params, cfg, x, 8, n_samples=20, seed=3)["rates"])
    c = infer(params, cfg, x, 8, n_samples=20, seed=4)
    mean = infer(params, cfg, x, 8, posterior_mean=True)
    assert a["rates"].shape == (2, 5, 8, 9) and a["inputs"].shape == (2, 5, 6, 2)
    assert np.array_equal(a["ic_mean"], mean["ic_mean"])
    chunked_mean = infer(params, cfg, x, 8, posterior_mean=True, max_batch=2)
    assert np.allclose(chunked_mean["rates"], mean["rates"], atol=1e-6)
    assert b["rates"].shape == a["rates"].shape
    assert not np.allclose(a["rates"], c["rates"])
    # averaging exp(log-rates) over samples: Jensen, the mean rate exceeds the rate of the
    # mean when the posterior is wide; check it differs from the posterior-mean pass
    assert not np.allclose(a["rates"], mean["rates"])
    many = infer(params, cfg, x, 8, n_samples=400, seed=5)
    few = infer(params, cfg, x, 8, n_samples=400, seed=6)
    # two independent 400-sample averages agree much better than single samples do
    one_a = infer(params, cfg, x, 8, n_samples=1, seed=5)
    one_b = infer(params, cfg, x, 8, n_samples=1, seed=6)
    spread_many = np.abs(many["rates"] - few["rates"]).mean()
    spread_one = np.abs(one_a["rates"] - one_b["rates"]).mean()
    assert spread_many < 0.25 * spread_one


@pytest.mark.parametrize("ci_lag", [0, 1, 2])
def test_controller_input_code_at_t_does_not_read_bins_within_the_lag(ci_lag):
    from lfadskit.lfads.network import _encode

    cfg = LFADSConfig(**{**TINY, "ci_lag": ci_lag})
    params = make(cfg, Sizes(7, 9), [0])
    x = torch.ones(1, 2, 8, 7, requires_grad=True)
    _, ci = _encode(params, x, cfg)  # (K, T, B, 2 * ci_enc_dim)
    t = 4
    (grad,) = torch.autograd.grad(ci[:, t].sum(), x)
    reads = grad[0, 0].abs().sum(dim=-1) > 0  # which input bins code t depends on
    expected = torch.tensor([abs(s - t) >= ci_lag for s in range(8)])
    if ci_lag == 0:
        expected[:] = True
    assert torch.equal(reads, expected)
