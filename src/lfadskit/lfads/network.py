r"""The LFADS network for a population of K members: parameters, random draws, forward pass.

Parameters live in a plain ``dict[str, Tensor]``; every tensor has the population axis first,
so copying one member onto another is ``p[name][dst] = p[name][src]`` for every name.

Data flow (SPEC section 2), shapes per member::

    counts (B, T, N_in) --dropout--> IC encoder (bi-GRU) --> g0 posterior --> linear --> gen h0
                                 \--> CI encoder (bi-GRU, lag) --dropout--> ci_t
    for t in 0 .. T_out - 1:
        controller GRU on [ci_t, dropout(factors_{t-1})] --> u_t ~ N(mean, var)   (t < T)
        generator GRU on [u_t, ext_t]                                            (u = 0 after T)
        factors_t = dropout(gen_t) @ unit-norm fac kernel
    log_rates = factors @ readout + bias   (B, T_out, N_out)

Examples
--------
>>> import torch
>>> from lfadskit.lfads.config import LFADSConfig
>>> cfg = LFADSConfig(ic_enc_dim=8, ci_enc_dim=8, ic_dim=4, con_dim=8, gen_dim=8, fac_dim=3)
>>> sizes = Sizes(n_neurons_in=5, n_neurons_out=6)
>>> params = init_params(cfg, sizes, [torch.Generator().manual_seed(s) for s in (0, 1)])
>>> out = forward(params, torch.ones(3, 10, 5), cfg, n_timesteps_out=12)
>>> out["log_rates"].shape
torch.Size([2, 3, 12, 6])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lfadskit.lfads.config import LFADSConfig
from lfadskit.lfads.decoder import decode
from lfadskit.lfads.layers import dropout_keep, init_normal, linear, run_gru
from lfadskit.lfads.streams import per_member

__all__ = ["Sizes", "param_shapes", "init_params", "draw_noise", "forward", "RECURRENT_KERNELS"]

#: Recurrent kernels penalized by L2, with the config field of their scale.
RECURRENT_KERNELS = {"gen.w_hh": "l2_gen_scale", "con.w_hh": "l2_con_scale"}


@dataclass(frozen=True)
class Sizes:
    """Sizes that come from the data.

    Parameters
    ----------
    n_neurons_in : int
        Encoder-input (held-in) neurons.
    n_neurons_out : int
        Output neurons (held-in + held-out).
    n_ext : int
        External input dimensions (0 = none).
    """

    n_neurons_in: int
    n_neurons_out: int
    n_ext: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "n_neurons_in": self.n_neurons_in,
            "n_neurons_out": self.n_neurons_out,
            "n_ext": self.n_ext,
        }


def _merge_encoders(cfg: LFADSConfig) -> bool:
    # Both encoders run in one time loop as 4 directions when their sizes match.
    return cfg.co_dim > 0 and cfg.ic_enc_dim == cfg.ci_enc_dim


def param_shapes(cfg: LFADSConfig, sizes: Sizes) -> dict[str, tuple[tuple[int, ...], int]]:
    """Per-member shape and fan-in of every parameter, in initialization order."""
    n_in, e, ic, g, f = sizes.n_neurons_in, cfg.ic_enc_dim, cfg.ic_dim, cfg.gen_dim, cfg.fac_dim
    shapes = {
        "ic_enc.w_ih": ((2, n_in, 3 * e), n_in),
        "ic_enc.w_hh": ((2, e, 3 * e), e),
        "ic_enc.b_ih": ((2, 3 * e), 0),
        "ic_enc.b_hh": ((2, 3 * e), 0),
        "ic_post.w": ((2 * e, 2 * ic), 2 * e),
        "ic_post.b": ((2 * ic,), 0),
        "ic_prior.mean": ((ic,), 0),
        "gen0.w": ((ic, g), ic),
        "gen0.b": ((g,), 0),
    }
    if cfg.co_dim > 0:
        ce, c, co = cfg.ci_enc_dim, cfg.con_dim, cfg.co_dim
        shapes.update(
            {
                "ci_enc.w_ih": ((2, n_in, 3 * ce), n_in),
                "ci_enc.w_hh": ((2, ce, 3 * ce), ce),
                "ci_enc.b_ih": ((2, 3 * ce), 0),
                "ci_enc.b_hh": ((2, 3 * ce), 0),
                "con.w_ci": ((2 * ce, 3 * c), 2 * ce + f),
                "con.w_fac": ((f, 3 * c), 2 * ce + f),
                "con.b_ih": ((3 * c,), 0),
                "con.w_hh": ((c, 3 * c), c),
                "con.b_hh": ((3 * c,), 0),
                "co.w": ((c, 2 * co), c),
                "co.b": ((2 * co,), 0),
                "co_prior.log_tau": ((co,), 0),
                "co_prior.log_var": ((co,), 0),
                "gen.w_u": ((co, 3 * g), co + sizes.n_ext),
            }
        )
    if sizes.n_ext > 0:
        shapes["gen.w_ext"] = ((sizes.n_ext, 3 * g), cfg.co_dim + sizes.n_ext)
    shapes.update(
        {
            "gen.b_ih": ((3 * g,), 0),
            "gen.w_hh": ((g, 3 * g), g),
            "gen.b_hh": ((3 * g,), 0),
            "fac.w": ((g, f), g),
            "readout.w": ((f, sizes.n_neurons_out), f),
            "readout.b": ((sizes.n_neurons_out,), 0),
        }
    )
    return shapes


def _init_member(
    cfg: LFADSConfig, sizes: Sizes, generator: torch.Generator, readout_bias: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    params = {}
    for name, (shape, fan_in) in param_shapes(cfg, sizes).items():
        if fan_in > 0:
            params[name] = init_normal(shape, fan_in, generator)
        else:
            params[name] = torch.zeros(shape)
    for name in ("ic_enc.b_ih", "ci_enc.b_ih", "con.b_ih", "gen.b_ih"):
        if name in params:
            # update-gate bias 1: the GRU starts out remembering (LFADS' forget bias)
            hidden = params[name].shape[-1] // 3
            params[name][..., hidden : 2 * hidden] = 1.0
    if "co_prior.log_tau" in params:
        params["co_prior.log_tau"].fill_(math.log(cfg.co_prior_tau))
        params["co_prior.log_var"].fill_(math.log(cfg.co_prior_var))
    if readout_bias is not None:
        params["readout.b"] = readout_bias.detach().clone().float()
    return params


def init_params(
    cfg: LFADSConfig,
    sizes: Sizes,
    generators: list[torch.Generator],
    readout_bias: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Initial parameters of K members, member k drawn from ``generators[k]`` only.

    Parameters
    ----------
    cfg : LFADSConfig
    sizes : Sizes
    generators : list of K torch.Generator (CPU)
        Member k's weights depend only on generators[k], so a member of a population and
        a model trained alone from the same seed start identical.
    readout_bias : Tensor (n_neurons_out,), optional
        Initial log-rate bias (e.g. log mean count per bin of each output neuron).
    device : torch device

    Returns
    -------
    dict name -> Tensor (K, ...) with requires_grad.
    """
    members = [_init_member(cfg, sizes, g, readout_bias) for g in generators]
    return {
        name: torch.stack([m[name] for m in members]).to(device).requires_grad_(True)
        for name in members[0]
    }


def draw_noise(
    generators: list[torch.Generator],
    cfg: LFADSConfig,
    n_trials: int,
    n_timesteps: int,
    n_timesteps_out: int,
    n_neurons_in: int,
    dropout: torch.Tensor | None,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """All random numbers of one forward pass, drawn per member from its own stream.

    One ``rand`` and one ``randn`` call per member (not per time step) keep the cost low and
    make member k's draws independent of the other members.

    Parameters
    ----------
    generators : list of K torch.Generator (on ``device``)
    cfg : LFADSConfig
    n_trials, n_timesteps, n_timesteps_out, n_neurons_in : int
    dropout : Tensor (K,) or None
        Per-member dropout rates; None draws only the posterior samples (inference).
    device : torch device

    Returns
    -------
    dict with 'eps_ic' (K, B, ic_dim), 'eps_co' (K, T, B, co_dim) and, when ``dropout`` is
    given, scaled keep-masks 'keep_in' (K, B, T, N_in), 'keep_ic' (K, B, 2 * ic_enc_dim),
    'keep_ci' (K, T, B, 2 * ci_enc_dim), 'keep_con' (K, T, B, fac_dim),
    'keep_gen' (K, T_out + 1, B, gen_dim).
    """
    b, t = n_trials, n_timesteps
    uniform_shapes = {}
    if dropout is not None:
        uniform_shapes = {
            "keep_in": (b, t, n_neurons_in),
            "keep_ic": (b, 2 * cfg.ic_enc_dim),
            "keep_ci": (t, b, 2 * cfg.ci_enc_dim),
            "keep_con": (t, b, cfg.fac_dim),
            "keep_gen": (n_timesteps_out + 1, b, cfg.gen_dim),
        }
        if cfg.co_dim == 0:
            del uniform_shapes["keep_ci"], uniform_shapes["keep_con"]
    normal_shapes = {"eps_ic": (b, cfg.ic_dim)}
    if cfg.co_dim > 0:
        normal_shapes["eps_co"] = (t, b, cfg.co_dim)
    n_uniform = sum(math.prod(s) for s in uniform_shapes.values())
    n_normal = sum(math.prod(s) for s in normal_shapes.values())
    draws = per_member(
        lambda gen: (
            torch.rand(n_uniform, generator=gen, device=device),
            torch.randn(n_normal, generator=gen, device=device),
        ),
        generators,
    )
    uniforms, normals = [u for u, _ in draws], [n for _, n in draws]
    noise = {}
    for flat, shapes in (
        (torch.stack(uniforms), uniform_shapes),
        (torch.stack(normals), normal_shapes),
    ):
        start = 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            noise[name] = flat[:, start : start + size].reshape(-1, *shape)
            start += size
    if dropout is not None:
        for name in uniform_shapes:
            noise[name] = dropout_keep(noise[name], dropout)
    return noise


def _bidirectional(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    b_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_hh: torch.Tensor,
    cell_clip: float,
) -> torch.Tensor:
    """Run D directions (even: forward, odd: backward) of K members in one time loop.

    x (K, B, T, N); w_ih (K, D, N, 3H); returns states (K, D, T, B, H) in processing order
    (for a backward direction, step s read bin T - 1 - s).
    """
    k, d, n_in, _ = w_ih.shape
    hidden = w_hh.shape[-2]
    n_time, n_batch = x.shape[2], x.shape[1]
    x = x.transpose(1, 2)  # time-major (K, T, B, N)
    both = torch.stack([x, x.flip(1)], dim=1)  # (K, 2, T, B, N): reading order of each parity
    # input projections of every step and direction in one product, written straight into
    # the (K * D, T, B, 3H) layout of the recurrence (a permuted einsum result would be copied)
    both = both.reshape(k, 1, 2, n_time * n_batch, n_in)
    gates = torch.matmul(both, w_ih.reshape(k, d // 2, 2, n_in, -1))
    gates = gates.add_(b_ih.reshape(k, d // 2, 2, 1, -1)).reshape(k * d, n_time, n_batch, -1)
    h0 = x.new_zeros(k * d, n_batch, hidden)
    clip = None if cell_clip >= 1.0 else cell_clip  # from a zero state a clip >= 1 cannot act
    states = run_gru(gates, h0, w_hh.reshape(k * d, hidden, -1), b_hh.reshape(k * d, -1), clip)
    return states.reshape(k, d, n_time, n_batch, hidden)


def _encode(params, x, cfg):
    """Final IC-encoder states (K, B, 2E) and lagged CI codes (K, T, B, 2CE) or None."""
    clip = cfg.cell_clip
    if _merge_encoders(cfg):
        cat = lambda name: torch.cat([params[f"ic_enc.{name}"], params[f"ci_enc.{name}"]], 1)
        states = _bidirectional(x, cat("w_ih"), cat("b_ih"), cat("w_hh"), cat("b_hh"), clip)
        ic_states, ci_states = states[:, :2], states[:, 2:]
    else:
        enc = lambda pre: _bidirectional(
            x,
            params[f"{pre}.w_ih"],
            params[f"{pre}.b_ih"],
            params[f"{pre}.w_hh"],
            params[f"{pre}.b_hh"],
            clip,
        )
        ic_states = enc("ic_enc")
        ci_states = enc("ci_enc") if cfg.co_dim > 0 else None
    # final states: the forward direction has read up to the last bin, backward to the first
    ic_final = torch.cat([ic_states[:, 0, -1], ic_states[:, 1, -1]], dim=-1)
    if ci_states is None:
        return ic_final, None
    lag = cfg.ci_lag
    fwd, bwd = ci_states[:, 0], ci_states[:, 1].flip(1)  # both in original time order
    if lag > 0:
        # the controller at t reads forward codes up to t - lag and backward codes from t + lag
        pad = torch.zeros_like(fwd[:, :lag])
        fwd = torch.cat([pad, fwd[:, :-lag]], dim=1)[:, : x.shape[2]]
        bwd = torch.cat([bwd[:, lag:], pad], dim=1)[:, : x.shape[2]]
    return ic_final, torch.cat([fwd, bwd], dim=-1)


def forward(
    params: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    cfg: LFADSConfig,
    n_timesteps_out: int,
    noise: dict[str, torch.Tensor] | None = None,
    ext_input: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Forward pass of K members.

    Parameters
    ----------
    params : dict name -> Tensor (K, ...)
    inputs : Tensor (K, B, T, N_in) or (B, T, N_in)
        Encoder input counts (after SV/CD masking); a 3-D input is shared by all members.
    cfg : LFADSConfig
    n_timesteps_out : int
        Output steps (T + forward bins); after T the controller input is zero.
    noise : dict, optional
        From ``draw_noise``. Keep-masks switch dropout on; 'eps_*' switch posterior sampling
        on. None: deterministic posterior-mean pass (no dropout).
    ext_input : Tensor (B, T, n_ext), optional

    Returns
    -------
    dict with 'log_rates' (K, B, T_out, N_out), 'factors' (K, B, T_out, F), 'ic_mean',
    'ic_std' (K, B, ic_dim), and when co_dim > 0: 'co_mean', 'co_std', 'u' (K, B, T, co_dim).
    """
    noise = noise or {}
    k = params["gen.w_hh"].shape[0]
    if inputs.dim() == 3:
        inputs = inputs.unsqueeze(0).expand(k, -1, -1, -1)
    _, n_batch, n_time, _ = inputs.shape
    keep = lambda name, x: x * noise[name] if name in noise else x
    x = keep("keep_in", inputs)

    ic_final, ci = _encode(params, x, cfg)
    ic_final = keep("keep_ic", ic_final)
    post = linear(ic_final, params["ic_post.w"], params["ic_post.b"])
    ic_mean, ic_logvar = post.chunk(2, dim=-1)
    ic_std = torch.sqrt(torch.exp(ic_logvar) + cfg.ic_post_var_min)
    g0 = ic_mean + ic_std * noise["eps_ic"] if "eps_ic" in noise else ic_mean
    gen = linear(g0, params["gen0.w"], params["gen0.b"])
    # A GRU state never leaves [-max(1, |h0|), max(1, |h0|)], so the clip acts only when
    # it is below 1 or below an initial state; skipping it otherwise is exact and cheaper.
    con_clip = None if cfg.cell_clip >= 1.0 else cfg.cell_clip
    gen_clip = con_clip if float(gen.detach().abs().max()) <= cfg.cell_clip else cfg.cell_clip

    # unit-norm rows of the factor map (in our (in, out) layout: unit-norm columns)
    fac_w = params["fac.w"] / params["fac.w"].norm(dim=1, keepdim=True)
    gen_x = params["gen.b_ih"].unsqueeze(1).unsqueeze(1).expand(k, n_timesteps_out, n_batch, -1)
    if ext_input is not None:
        ext = ext_input.transpose(0, 1).unsqueeze(0).expand(k, -1, -1, -1)
        ext = torch.cat([ext, ext.new_zeros(k, n_timesteps_out - n_time, *ext.shape[2:])], 1)
        gen_x = gen_x + linear(ext, params["gen.w_ext"])
    con_x = None
    if cfg.co_dim > 0:
        ci = keep("keep_ci", ci)
        con_x = linear(ci, params["con.w_ci"], params["con.b_ih"])  # (K, T, B, 3C)
    decoded = decode(
        params, fac_w, gen, con_x, gen_x, noise, cfg.ic_post_var_min, con_clip, gen_clip
    )
    factors = decoded.pop("factors")  # (K, B, T_out, F)
    out = {
        "log_rates": linear(factors, params["readout.w"], params["readout.b"]),
        "factors": factors,
        "ic_mean": ic_mean,
        "ic_std": ic_std,
        **decoded,
    }
    return out
