"""Inference: rates by posterior-sample averaging (batched) or from the posterior mean.

Samples are not drawn in a Python loop of forward passes: each chunk of trials is repeated
``n_samples`` times along the trial axis and run as one batch.

Examples
--------
>>> import torch
>>> from lfadskit.lfads.config import LFADSConfig
>>> from lfadskit.lfads.network import Sizes, init_params
>>> cfg = LFADSConfig(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4, fac_dim=2)
>>> params = init_params(cfg, Sizes(3, 4), [torch.Generator().manual_seed(0)])
>>> out = infer(params, cfg, torch.ones(5, 6, 3), n_timesteps_out=8, n_samples=10)
>>> out["rates"].shape
(1, 5, 8, 4)
"""

from __future__ import annotations

import numpy as np
import torch

from lfadskit.lfads.config import LFADSConfig
from lfadskit.lfads.memory import keep_freed_memory
from lfadskit.lfads.network import draw_noise, forward

__all__ = ["infer"]


@torch.no_grad()
def infer(
    params: dict[str, torch.Tensor],
    config: LFADSConfig,
    spikes: torch.Tensor,
    n_timesteps_out: int,
    n_samples: int | None = None,
    ext_input: torch.Tensor | None = None,
    posterior_mean: bool = False,
    seed: int = 0,
    max_batch: int = 512,
) -> dict[str, np.ndarray]:
    """Rates, factors, inferred inputs and initial conditions of K members.

    Parameters
    ----------
    params : dict name -> Tensor (K, ...)
    config : LFADSConfig
    spikes : Tensor (n_trials, n_timesteps, n_neurons_in)
        Encoder input counts (no CD, no dropout at inference).
    n_timesteps_out : int
        n_timesteps + forward bins.
    n_samples : int, optional
        Posterior samples averaged (default ``config.n_samples``); ignored when
        ``posterior_mean``.
    ext_input : Tensor (n_trials, n_timesteps, n_ext), optional
    posterior_mean : bool
        Deterministic pass with the posterior means instead of samples.
    seed : int
        Seed of the posterior samples (one stream per member, derived from it).
    max_batch : int
        Largest number of (trial x sample) rows per forward pass; bounds the memory.

    Returns
    -------
    dict of float32 arrays with leading axis K:
    'rates' (K, n_trials, T_out, N_out), expected spikes per bin, mean over samples;
    'factors' (K, n_trials, T_out, fac_dim), mean over samples;
    'inputs' (K, n_trials, T, co_dim), mean over samples of the posterior means
    (absent when co_dim = 0);
    'ic_mean', 'ic_std' (K, n_trials, ic_dim).
    """
    keep_freed_memory()
    k = params["gen.w_hh"].shape[0]
    device = params["gen.w_hh"].device
    spikes = torch.as_tensor(spikes, dtype=torch.float32, device=device)
    if ext_input is not None:
        ext_input = torch.as_tensor(ext_input, dtype=torch.float32, device=device)
    n_trials, n_time, n_in = spikes.shape
    n_samples = 1 if posterior_mean else int(n_samples or config.n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples: expected an integer >= 1, got {n_samples}")
    generators = [
        torch.Generator(device).manual_seed(seed * 1_000_003 + member) for member in range(k)
    ]
    chunk = max(1, max_batch // n_samples)
    pieces = []
    for start in range(0, n_trials, chunk):
        x = spikes[start : start + chunk]
        n_chunk = x.shape[0]
        # trial i's samples sit at rows i, i + n_chunk, ... (repeat, not interleave)
        x_rep = x.repeat(n_samples, 1, 1)
        ext = (
            None if ext_input is None else ext_input[start : start + chunk].repeat(n_samples, 1, 1)
        )
        noise = None
        if not posterior_mean:
            noise = draw_noise(
                generators,
                config,
                n_chunk * n_samples,
                n_time,
                n_timesteps_out,
                n_in,
                dropout=None,
                device=device,
            )
        out = forward(params, x_rep, config, n_timesteps_out, noise, ext)

        def mean_over(t, n_chunk=n_chunk):
            return t.reshape(k, n_samples, n_chunk, *t.shape[2:]).mean(dim=1)

        piece = {
            "rates": mean_over(torch.exp(out["log_rates"])),
            "factors": mean_over(out["factors"]),
            "ic_mean": out["ic_mean"][:, :n_chunk],
            "ic_std": out["ic_std"][:, :n_chunk],
        }
        if "co_mean" in out:
            piece["inputs"] = mean_over(out["co_mean"])
        pieces.append(piece)
    return {
        name: torch.cat([p[name] for p in pieces], dim=1).cpu().numpy().astype(np.float32)
        for name in pieces[0]
    }
