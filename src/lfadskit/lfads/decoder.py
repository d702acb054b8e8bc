r"""The controller and generator recurrence of K members (the LFADS decoder).

Per step t, shapes per member (SPEC section 2)::

    controller GRU on [ci_t, dropout(factors_{t-1})] --> u_t = mean + std * eps   (t < T)
    generator GRU on [u_t, ext_t]                                                  (u = 0 after T)
    factors_t = dropout(gen_t) @ unit-norm factor kernel

``decode`` runs it in one of three exact ways:

- in training, without a controller, the generator does not read the factors, so its whole
  sequence runs as one GRU node and the factors are one product afterwards;
- in training with a controller and no state clip that can act, the loop is one autograd
  node (``_Decoder``) with a hand-written backward: kernel gradients are one matrix product
  over all steps instead of one small product per step, and no per-step graph is recorded;
- otherwise (inference under ``torch.no_grad``, or a clip that can act) a plain loop of
  per-step nodes; under ``no_grad`` it keeps nothing for a backward pass.

``tests/test_lfads_decoder.py`` checks that all three give the same outputs and gradients.

Examples
--------
>>> import torch
>>> k, b, t, g, c, f, u = 2, 3, 4, 5, 6, 2, 1
>>> z = lambda *s: torch.zeros(*s)
>>> w = {"gen.w_hh": z(k, g, 3 * g), "gen.b_hh": z(k, 3 * g), "gen.w_u": z(k, u, 3 * g),
...      "con.w_fac": z(k, f, 3 * c), "con.w_hh": z(k, c, 3 * c), "con.b_hh": z(k, 3 * c),
...      "co.w": z(k, c, 2 * u), "co.b": z(k, 2 * u)}
>>> con_x, gen_x = z(k, t, b, 3 * c), z(k, t, b, 3 * g)
>>> out = decode(w, z(k, g, f), z(k, b, g), con_x, gen_x, {}, 1e-4, None, None)
>>> out["factors"].shape, out["u"].shape
(torch.Size([2, 3, 4, 2]), torch.Size([2, 3, 4, 1]))
"""

from __future__ import annotations

import torch

from lfadskit.lfads.layers import (
    gru_step,
    gru_step_backward_into,
    gru_step_into,
    linear,
    run_gru,
)

__all__ = ["decode", "decode_steps"]

_CON_WEIGHTS = ("con.w_fac", "con.w_hh", "con.b_hh", "co.w", "co.b", "gen.w_u")


def decode(params, fac_w, gen0, con_x, gen_x, noise, var_min, con_clip, gen_clip):
    """Run the decoder of K members.

    Parameters
    ----------
    params : dict name -> Tensor (K, ...)
        Uses 'gen.w_hh', 'gen.b_hh' and, with a controller, 'gen.w_u', 'con.w_fac',
        'con.w_hh', 'con.b_hh', 'co.w', 'co.b'.
    fac_w : Tensor (K, G, F)
        Unit-norm factor kernel.
    gen0 : Tensor (K, B, G)
        Initial generator state.
    con_x : Tensor (K, T, B, 3C) or None
        Controller input gates from the CI codes (input bias included); None: no controller.
    gen_x : Tensor (K, T_out, B, 3G)
        Generator input gates without the inferred inputs (bias, external inputs).
    noise : dict
        Optional 'keep_con' (K, T, B, F), 'keep_gen' (K, T_out + 1, B, G) dropout
        keep-masks and 'eps_co' (K, T, B, U) posterior noise (absent: the posterior mean).
    var_min : float
        Floor added to the inferred inputs' posterior variance.
    con_clip, gen_clip : float or None
        State clips of the controller and the generator; None: the clip cannot act.

    Returns
    -------
    dict with 'factors' (K, B, T_out, F) and, with a controller, 'co_mean', 'co_std', 'u'
    (K, B, T, U).
    """
    keep_gen = noise.get("keep_gen")
    if not torch.is_grad_enabled():  # inference: keep nothing for a backward pass
        return decode_steps(params, fac_w, gen0, con_x, gen_x, noise, var_min, con_clip, gen_clip)
    if con_x is None:
        states = run_gru(gen_x, gen0, params["gen.w_hh"], params["gen.b_hh"], gen_clip)
        if keep_gen is not None:
            states = states * keep_gen[:, 1:]
        return {"factors": linear(states, fac_w).transpose(1, 2)}
    if con_clip is not None or gen_clip is not None:
        return decode_steps(params, fac_w, gen0, con_x, gen_x, noise, var_min, con_clip, gen_clip)
    outputs = _Decoder.apply(
        con_x,
        gen_x,
        gen0,
        fac_w,
        *(params[name] for name in _CON_WEIGHTS),
        params["gen.w_hh"],
        params["gen.b_hh"],
        noise.get("keep_con"),
        noise.get("eps_co"),
        keep_gen,
        float(var_min),
    )
    # time-major (T, K, B, .) -> (K, B, T, .)
    names = ("factors", "co_mean", "co_std", "u")
    return {name: out.permute(1, 2, 0, 3) for name, out in zip(names, outputs, strict=True)}


def decode_steps(params, fac_w, gen0, con_x, gen_x, noise, var_min, con_clip, gen_clip):
    """``decode`` as a loop of per-step autograd nodes (any clip; the reference in tests)."""
    k, n_batch = gen0.shape[:2]
    n_out = gen_x.shape[1]
    use_con = con_x is not None
    n_time = con_x.shape[1] if use_con else 0
    gen_x = gen_x.unbind(1)  # unbind once: indexing [:, t] in the loop costs O(T^2) backward
    if use_con:
        con_x = con_x.unbind(1)
        con = gen0.new_zeros(k, n_batch, params["con.w_hh"].shape[1])
        con_b_hh = params["con.b_hh"].unsqueeze(1)
        co_means, co_stds, us = [], [], []
    gen_b_hh = params["gen.b_hh"].unsqueeze(1)
    keep_gen = noise.get("keep_gen")
    gen = gen0
    factor = torch.bmm(gen if keep_gen is None else gen * keep_gen[:, 0], fac_w)
    factors = []
    for t in range(n_out):
        x_gates = gen_x[t]
        if use_con and t < n_time:
            con_in = factor * noise["keep_con"][:, t] if "keep_con" in noise else factor
            con_gates = torch.baddbmm(con_x[t], con_in, params["con.w_fac"])
            con = gru_step(con_gates, con, params["con.w_hh"], con_b_hh, con_clip)
            co = torch.baddbmm(params["co.b"].unsqueeze(1), con, params["co.w"])
            co_mean, co_logvar = co.chunk(2, dim=-1)
            co_std = torch.sqrt(torch.exp(co_logvar) + var_min)
            u = co_mean + co_std * noise["eps_co"][:, t] if "eps_co" in noise else co_mean
            co_means.append(co_mean)
            co_stds.append(co_std)
            us.append(u)
            x_gates = torch.baddbmm(x_gates, u, params["gen.w_u"])
        gen = gru_step(x_gates, gen, params["gen.w_hh"], gen_b_hh, gen_clip)
        factor = torch.bmm(gen if keep_gen is None else gen * keep_gen[:, t + 1], fac_w)
        factors.append(factor)
    out = {"factors": torch.stack(factors, dim=2)}  # (K, B, T_out, F)
    if use_con:
        out["co_mean"] = torch.stack(co_means, dim=2)
        out["co_std"] = torch.stack(co_stds, dim=2)
        out["u"] = torch.stack(us, dim=2)
    return out


def _flat(buffer):
    """(T, K, B, X) -> (K, T * B, X): every step's rows of one member, for one product."""
    return buffer.transpose(0, 1).reshape(buffer.shape[1], -1, buffer.shape[-1])


class _Decoder(torch.autograd.Function):
    """The whole controller/generator loop (no clip acting) as one autograd node.

    Buffers are time-major (T, K, B, .), so each step reads and writes contiguous blocks;
    index 0 of the state and factor buffers holds the initial values.
    """

    @staticmethod
    def forward(
        ctx,
        con_x,
        gen_x,
        gen0,
        fac_w,
        w_fac,
        con_w_hh,
        con_b_hh,
        co_w,
        co_b,
        w_u,
        gen_w_hh,
        gen_b_hh,
        keep_con,
        eps_co,
        keep_gen,
        var_min,
    ):
        k, n_time, n_batch = con_x.shape[:3]
        n_out, n_gen, n_con = gen_x.shape[1], gen0.shape[-1], con_w_hh.shape[1]
        n_fac, n_co = fac_w.shape[-1], co_w.shape[-1] // 2
        new = gen0.new_empty
        gen_h = new(n_out + 1, k, n_batch, n_gen)
        gen_hg, gen_ru = new(n_out, k, n_batch, 3 * n_gen), new(n_out, k, n_batch, 2 * n_gen)
        gen_cand = new(n_out, k, n_batch, n_gen)
        con_h = new(n_time + 1, k, n_batch, n_con)
        con_hg, con_ru = new(n_time, k, n_batch, 3 * n_con), new(n_time, k, n_batch, 2 * n_con)
        con_cand = new(n_time, k, n_batch, n_con)
        factors = new(n_out + 1, k, n_batch, n_fac)
        co = new(n_time, k, n_batch, 2 * n_co)
        co_mean, co_std, u = (new(n_time, k, n_batch, n_co) for _ in range(3))
        gen_in = new(n_out + 1, k, n_batch, n_gen) if keep_gen is not None else gen_h
        fac_in = new(n_time, k, n_batch, n_fac) if keep_con is not None else factors
        gen_b, con_b, co_b = gen_b_hh.unsqueeze(1), con_b_hh.unsqueeze(1), co_b.unsqueeze(1)

        gen_h[0], con_h[0] = gen0, 0.0
        if keep_gen is not None:
            torch.mul(gen0, keep_gen[:, 0], out=gen_in[0])
        torch.bmm(gen_in[0], fac_w, out=factors[0])
        for t in range(n_out):
            if t < n_time:
                if keep_con is not None:
                    torch.mul(factors[t], keep_con[:, t], out=fac_in[t])
                con_gates = torch.baddbmm(con_x[:, t], fac_in[t], w_fac)
                gru_step_into(
                    con_gates, con_h[t], con_w_hh, con_b, con_hg[t], con_ru[t], con_cand[t],
                    con_h[t + 1],
                )  # fmt: skip
                torch.baddbmm(co_b, con_h[t + 1], co_w, out=co[t])
                co_mean[t] = co[t, ..., :n_co]
                torch.exp(co[t, ..., n_co:], out=co_std[t]).add_(var_min).sqrt_()
                if eps_co is not None:
                    torch.addcmul(co_mean[t], co_std[t], eps_co[:, t], out=u[t])
                else:
                    u[t] = co_mean[t]
                gen_gates = torch.baddbmm(gen_x[:, t], u[t], w_u)
            else:
                gen_gates = gen_x[:, t]
            gru_step_into(
                gen_gates, gen_h[t], gen_w_hh, gen_b, gen_hg[t], gen_ru[t], gen_cand[t],
                gen_h[t + 1],
            )  # fmt: skip
            if keep_gen is not None:
                torch.mul(gen_h[t + 1], keep_gen[:, t + 1], out=gen_in[t + 1])
            torch.bmm(gen_in[t + 1], fac_w, out=factors[t + 1])

        ctx.var_min = var_min
        ctx.save_for_backward(
            fac_w, w_fac, con_w_hh, co_w, w_u, gen_w_hh, keep_con, eps_co, keep_gen,
            gen_h, gen_hg, gen_ru, gen_cand, con_h, con_hg, con_ru, con_cand, co, co_std, u,
            gen_in, fac_in,
        )  # fmt: skip
        return factors[1:], co_mean, co_std, u

    @staticmethod
    def backward(ctx, d_factors, d_co_mean, d_co_std, d_u):
        (
            fac_w, w_fac, con_w_hh, co_w, w_u, gen_w_hh, keep_con, eps_co, keep_gen,
            gen_h, gen_hg, gen_ru, gen_cand, con_h, con_hg, con_ru, con_cand, co, co_std, u,
            gen_in, fac_in,
        ) = ctx.saved_tensors  # fmt: skip
        n_out, k, n_batch, n_gen = gen_cand.shape
        n_time, n_con, n_co = con_cand.shape[0], con_cand.shape[-1], u.shape[-1]
        new = gen_h.new_empty
        d_gen_x, d_gen_gh = new(n_out, k, n_batch, 3 * n_gen), new(n_out, k, n_batch, 3 * n_gen)
        d_con_x, d_con_gh = new(n_time, k, n_batch, 3 * n_con), new(n_time, k, n_batch, 3 * n_con)
        d_fac = new(n_out + 1, k, n_batch, d_factors.shape[-1])
        d_co = new(n_time, k, n_batch, 2 * n_co)
        tr = lambda w: w.transpose(1, 2)
        fac_w_t, w_fac_t, co_w_t, w_u_t = tr(fac_w), tr(w_fac), tr(co_w), tr(w_u)
        con_w_hh_t, gen_w_hh_t = tr(con_w_hh), tr(gen_w_hh)
        var = torch.exp(co[..., n_co:])  # exp(logvar) of every step

        d_gen = torch.zeros_like(gen_h[0])
        d_con = torch.zeros_like(con_h[0])
        carry = None  # gradient reaching factors[t + 1] through the controller's input
        for t in range(n_out - 1, -1, -1):
            d_f = d_fac[t + 1]
            if carry is None:
                d_f.copy_(d_factors[t])
            else:
                torch.add(d_factors[t], carry, out=d_f)
            if keep_gen is None:
                grad = torch.baddbmm(d_gen, d_f, fac_w_t)
            else:
                grad = torch.addcmul(d_gen, torch.bmm(d_f, fac_w_t), keep_gen[:, t + 1])
            d_gen = gru_step_backward_into(
                grad, gen_h[t], gen_hg[t], gen_ru[t], gen_cand[t], gen_w_hh_t, d_gen_x[t],
                d_gen_gh[t],
            )  # fmt: skip
            if t >= n_time:
                carry = None
                continue
            d_ut = torch.baddbmm(d_u[t], d_gen_x[t], w_u_t)
            d_mean, d_logvar = d_co[t, ..., :n_co], d_co[t, ..., n_co:]
            torch.add(d_co_mean[t], d_ut, out=d_mean)
            d_std = d_co_std[t]
            if eps_co is not None:
                d_std = torch.addcmul(d_std, d_ut, eps_co[:, t])
            # std = sqrt(exp(logvar) + var_min): d std / d logvar = exp(logvar) / (2 std)
            torch.mul(d_std, var[t], out=d_logvar).div_(co_std[t]).mul_(0.5)
            grad = torch.baddbmm(d_con, d_co[t], co_w_t)
            d_con = gru_step_backward_into(
                grad, con_h[t], con_hg[t], con_ru[t], con_cand[t], con_w_hh_t, d_con_x[t],
                d_con_gh[t],
            )  # fmt: skip
            carry = torch.bmm(d_con_x[t], w_fac_t)
            if keep_con is not None:
                carry.mul_(keep_con[:, t])
        d_fac[0] = carry
        if keep_gen is None:
            d_gen0 = torch.baddbmm(d_gen, d_fac[0], fac_w_t)
        else:
            d_gen0 = torch.addcmul(d_gen, torch.bmm(d_fac[0], fac_w_t), keep_gen[:, 0])

        # kernel gradients: one product over all steps each
        outer = lambda a, b: torch.bmm(_flat(a).transpose(1, 2), _flat(b))
        grads = (
            d_con_x.transpose(0, 1),  # con_x
            d_gen_x.transpose(0, 1),  # gen_x
            d_gen0,
            outer(gen_in, d_fac),  # fac_w
            outer(fac_in[:n_time], d_con_x),  # con.w_fac
            outer(con_h[:-1], d_con_gh),  # con.w_hh
            d_con_gh.sum(dim=(0, 2)),  # con.b_hh
            outer(con_h[1:], d_co),  # co.w
            d_co.sum(dim=(0, 2)),  # co.b
            outer(u, d_gen_x[:n_time]),  # gen.w_u
            outer(gen_h[:-1], d_gen_gh),  # gen.w_hh
            d_gen_gh.sum(dim=(0, 2)),  # gen.b_hh
        )
        return (*grads, None, None, None, None)
