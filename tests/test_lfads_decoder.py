"""The decoder's three exact paths give the same outputs and gradients.

The fused loop (one autograd node with a hand-written backward) and the whole-sequence
generator (no controller) are checked against the per-step loop, whose steps are themselves
checked against plain autograd in ``test_lfads_network.py``; the fused node also passes
gradcheck.
"""

from __future__ import annotations

import pytest
import torch

from lfadskit.lfads.decoder import _Decoder, decode, decode_steps

K, B, T, T_OUT, G, C, F, U = 2, 3, 5, 7, 4, 3, 2, 2
NAMES = ("con.w_fac", "con.w_hh", "con.b_hh", "co.w", "co.b", "gen.w_u", "gen.w_hh", "gen.b_hh")
SHAPES = {
    "con.w_fac": (K, F, 3 * C),
    "con.w_hh": (K, C, 3 * C),
    "con.b_hh": (K, 3 * C),
    "co.w": (K, C, 2 * U),
    "co.b": (K, 2 * U),
    "gen.w_u": (K, U, 3 * G),
    "gen.w_hh": (K, G, 3 * G),
    "gen.b_hh": (K, 3 * G),
}


def inputs(seed, with_noise, with_controller=True, n_out=T_OUT):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.double)
    params = {n: rand(*SHAPES[n]).requires_grad_() for n in NAMES}
    tensors = {
        "fac_w": rand(K, G, F).requires_grad_(),
        "gen0": (0.5 * rand(K, B, G)).requires_grad_(),
        "con_x": rand(K, T, B, 3 * C).requires_grad_() if with_controller else None,
        "gen_x": rand(K, n_out, B, 3 * G).requires_grad_(),
    }
    noise = {}
    if with_noise:
        keep = lambda *s: (torch.rand(*s, generator=g, dtype=torch.double) > 0.3) / 0.7
        noise = {"keep_con": keep(K, T, B, F), "keep_gen": keep(K, n_out + 1, B, G)}
        if with_controller:
            noise["eps_co"] = rand(K, T, B, U)
    return params, tensors, noise


def outputs_and_grads(fn, params, tensors, noise, seed=1):
    out = fn(params, *tensors.values(), noise, 1e-4, None, None)
    g = torch.Generator().manual_seed(seed)
    # a random linear functional of every output reaches every gradient path
    loss = sum((v * torch.randn(v.shape, generator=g, dtype=v.dtype)).sum() for v in out.values())
    leaves = [*params.values(), *(t for t in tensors.values() if t is not None)]
    leaves = [t for t in leaves if t.requires_grad]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return {k: v.detach() for k, v in out.items()}, grads


@pytest.mark.parametrize("n_out", [T_OUT, T])  # with and without forward-prediction bins
@pytest.mark.parametrize("with_noise", [True, False])
@pytest.mark.parametrize("with_controller", [True, False])
def test_fast_paths_match_the_per_step_loop(with_noise, with_controller, n_out):
    params, tensors, noise = inputs(0, with_noise, with_controller, n_out)
    fast_out, fast_grads = outputs_and_grads(decode, params, tensors, noise)
    ref_out, ref_grads = outputs_and_grads(decode_steps, params, tensors, noise)
    assert fast_out.keys() == ref_out.keys()
    for name in ref_out:
        assert fast_out[name].shape == ref_out[name].shape
        torch.testing.assert_close(fast_out[name], ref_out[name], rtol=1e-12, atol=1e-12)
    n_used = 0
    for fast, ref in zip(fast_grads, ref_grads, strict=True):
        assert (fast is None) == (ref is None)
        if ref is not None:
            n_used += 1
            assert fast.shape == ref.shape
            torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-12)
    # without a controller only the generator's weights, fac_w, gen0 and gen_x get gradients
    assert n_used == (12 if with_controller else 5)


def test_fused_decoder_passes_gradcheck():
    params, tensors, noise = inputs(2, with_noise=True)
    weights = [params[n] for n in NAMES]
    fn = lambda con_x, gen_x, gen0, fac_w, *w: _Decoder.apply(
        con_x, gen_x, gen0, fac_w, *w, noise["keep_con"], noise["eps_co"], noise["keep_gen"], 1e-4
    )
    args = (tensors["con_x"], tensors["gen_x"], tensors["gen0"], tensors["fac_w"], *weights)
    assert torch.autograd.gradcheck(fn, args)


def test_fused_decoder_takes_an_expanded_input_bias():
    # the generator's input gates are an expanded bias when there are no external inputs
    params, tensors, noise = inputs(3, with_noise=True)
    bias = torch.randn(K, 3 * G, dtype=torch.double, requires_grad=True)
    results = []
    for fn in (decode, decode_steps):
        gen_x = bias.unsqueeze(1).unsqueeze(1).expand(K, T_OUT, B, -1)
        out = fn(params, tensors["fac_w"], tensors["gen0"], tensors["con_x"], gen_x, noise,
                 1e-4, None, None)  # fmt: skip
        results.append(torch.autograd.grad(out["factors"].square().sum(), bias)[0])
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-12)


def test_no_grad_and_clipped_calls_take_the_per_step_loop():
    params, tensors, noise = inputs(4, with_noise=False)
    with torch.no_grad():
        plain = decode(params, *tensors.values(), noise, 1e-4, None, None)
    clipped = decode(params, *tensors.values(), noise, 1e-4, 0.5, 0.5)
    reference = decode_steps(params, *tensors.values(), noise, 1e-4, 0.5, 0.5)
    assert plain["factors"].grad_fn is None
    assert clipped["factors"].grad_fn is not None
    assert not isinstance(clipped["factors"].grad_fn, _Decoder._backward_cls)
    torch.testing.assert_close(clipped["factors"], reference["factors"], rtol=0, atol=0)


@pytest.mark.parametrize("co_dim", [0, 2])
def test_network_gradients_do_not_depend_on_the_decoder_path(monkeypatch, co_dim):
    # the whole forward pass (dropout, posterior samples, external inputs, forward bins)
    from lfadskit.lfads import network
    from lfadskit.lfads.config import LFADSConfig

    cfg = LFADSConfig(
        ic_enc_dim=5, ci_enc_dim=5, ic_dim=3, con_dim=4, co_dim=co_dim, gen_dim=6, fac_dim=3
    )
    sizes = network.Sizes(n_neurons_in=4, n_neurons_out=6, n_ext=2)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (0, 1)]
    spikes = torch.poisson(torch.full((3, 8, 4), 1.5), generator=torch.Generator().manual_seed(0))
    ext = torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(1))

    def grads():
        params = {
            n: p.double().requires_grad_()
            for n, p in network.init_params(cfg, sizes, gens()).items()
        }
        noise = network.draw_noise(gens(), cfg, 3, 8, 10, 4, torch.tensor([0.2, 0.4]))
        noise = {n: v.double() for n, v in noise.items()}
        out = network.forward(params, spikes.double(), cfg, 10, noise, ext.double())
        loss = out["log_rates"].exp().sum() + sum(v.square().sum() for n, v in out.items()
                                                  if n in ("co_mean", "co_std", "u"))  # fmt: skip
        # the fused node is taken whenever there is a controller (the clip cannot act here)
        parent = out["factors"].grad_fn.next_functions[0][0]
        fused = isinstance(parent, _Decoder._backward_cls)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return grads, fused

    fast, fused = grads()
    assert fused == (co_dim > 0)
    monkeypatch.setattr(network, "decode", decode_steps)
    slow, fused = grads()
    assert not fused
    for a, b in zip(fast, slow, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
