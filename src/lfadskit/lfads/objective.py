"""Loss terms of LFADS, per population member: NLL, KL (initial condition, AR(1) inputs), L2.

Every function returns one value per member (shape (K,)) so members never mix.

Examples
--------
>>> import torch
>>> ramp_weight(epoch=0, start=0, increase=4)
0.2
>>> log_rates = torch.zeros(1, 1, 1, 2)
>>> counts = torch.tensor([[[1.0, float("nan")]]])
>>> masked_poisson_nll(log_rates, counts, torch.ones(1, 1, 1, 2, dtype=torch.bool)).item()
1.0
"""

from __future__ import annotations

import math

import torch

from lfadskit.lfads.config import LFADSConfig
from lfadskit.lfads.network import RECURRENT_KERNELS

__all__ = [
    "population_loss",
    "poisson_nll",
    "masked_poisson_nll",
    "kl_initial_condition",
    "kl_inferred_inputs",
    "l2_penalty",
    "ramp_weight",
]

_LOG_2PI = math.log(2.0 * math.pi)


def poisson_nll(log_rates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Elementwise Poisson negative log-likelihood, log(k!) included.

    Parameters
    ----------
    log_rates : Tensor
        Log of the expected counts per bin.
    counts : Tensor (broadcastable), no NaN

    Examples
    --------
    >>> import torch
    >>> round(poisson_nll(torch.tensor(0.0), torch.tensor(2.0)).item(), 4)  # 1 + log 2
    1.6931
    """
    return torch.exp(log_rates) - counts * log_rates + torch.lgamma(counts + 1.0)


def masked_poisson_nll(
    log_rates: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean Poisson NLL over the masked, observed elements, per member.

    Parameters
    ----------
    log_rates : Tensor (K, B, T, N)
    counts : Tensor (B, T, N)
        Targets; NaN marks unobserved elements, which are always skipped.
    mask : bool Tensor broadcastable to (K, B, T, N)
        Elements that count (e.g. those that receive gradient).

    Returns
    -------
    Tensor (K,): mean NLL (NaN for a member with no counted element).
    """
    observed = ~torch.isnan(counts)
    clean = torch.where(observed, counts, torch.zeros_like(counts))
    keep = (mask & observed).expand_as(log_rates)
    k = log_rates.shape[0]
    count = keep.reshape(k, -1).sum(dim=1)
    return _MaskedPoissonSum.apply(log_rates, clean, torch.lgamma(clean + 1.0), keep) / count


class _MaskedPoissonSum(torch.autograd.Function):
    """Per-member sum over ``keep`` of exp(l) - c l + log c!, with its gradient fused.

    Written by hand because the loss runs over every output element of every member (the
    largest tensors of a step): autograd of the plain expression takes about three times as
    many passes over them. ``tests/test_lfads_objective.py`` checks it against ``poisson_nll``.
    """

    @staticmethod
    def forward(ctx, log_rates, counts, log_factorial, keep):
        rates = torch.exp(log_rates)
        nll = torch.addcmul(rates, counts, log_rates, value=-1.0).add_(log_factorial)
        ctx.save_for_backward(rates, counts, keep)
        k = log_rates.shape[0]
        # where, not a product: elements outside ``keep`` count exactly zero even if inf
        return torch.where(keep, nll, 0.0).reshape(k, -1).sum(dim=1)

    @staticmethod
    def backward(ctx, grad_total):
        rates, counts, keep = ctx.saved_tensors
        scale = grad_total.reshape(-1, *([1] * (rates.dim() - 1)))
        return torch.where(keep, rates - counts, 0.0).mul_(scale), None, None, None


def kl_initial_condition(
    mean: torch.Tensor, std: torch.Tensor, prior_mean: torch.Tensor, prior_var: float
) -> torch.Tensor:
    """Analytic KL(N(mean, std^2) || N(prior_mean, prior_var)), summed over dims, trial mean.

    Parameters
    ----------
    mean, std : Tensor (K, B, ic_dim)
    prior_mean : Tensor (K, ic_dim)
    prior_var : float

    Returns
    -------
    Tensor (K,)
    """
    var = std**2
    prior_mean = prior_mean.unsqueeze(1)
    kl = 0.5 * (
        math.log(prior_var) - torch.log(var) + (var + (mean - prior_mean) ** 2) / prior_var - 1.0
    )
    return kl.sum(dim=-1).mean(dim=1)


def _normal_log_density(x, mean, var):
    return -0.5 * (_LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)


def kl_inferred_inputs(
    u: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    log_tau: torch.Tensor,
    log_var: torch.Tensor,
) -> torch.Tensor:
    """One-sample KL estimate between the inferred-input posterior and an AR(1) prior.

    The prior of each dimension is a stationary AR(1) process with time constant tau (bins)
    and process (stationary) variance v: u_0 ~ N(0, v), and
    u_t ~ N(a u_{t-1}, v (1 - a^2)) with a = exp(-1 / tau).

    Parameters
    ----------
    u : Tensor (K, B, T, co_dim)
        Posterior samples.
    mean, std : Tensor (K, B, T, co_dim)
        Posterior mean and standard deviation.
    log_tau, log_var : Tensor (K, co_dim)
        Trainable log time constant and log process variance of the prior.

    Returns
    -------
    Tensor (K,): sum over time and dims of log q(u) - log p(u), mean over trials.
    """
    log_q = _normal_log_density(u, mean, std**2)
    alpha = torch.exp(-1.0 / torch.exp(log_tau))[:, None, None, :]
    var = torch.exp(log_var)[:, None, None, :]
    prior_mean = torch.cat([torch.zeros_like(u[:, :, :1]), alpha * u[:, :, :-1]], dim=2)
    innovation_var = var * (1.0 - alpha**2)
    prior_var = torch.cat(
        [var.expand_as(u[:, :, :1]), innovation_var.expand_as(u[:, :, 1:])], dim=2
    )
    log_p = _normal_log_density(u, prior_mean, prior_var)
    return (log_q - log_p).sum(dim=(2, 3)).mean(dim=1)


def l2_penalty(params: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over recurrent kernels of scale * 0.5 * ||W||^2 / (number of elements of W).

    Parameters
    ----------
    params : dict name -> Tensor (K, ...)
    scales : dict hyperparameter name -> Tensor (K,)
        Must hold 'l2_gen_scale' (and 'l2_con_scale' when the controller exists).

    Returns
    -------
    Tensor (K,)
    """
    total = 0.0
    for name, scale_name in RECURRENT_KERNELS.items():
        if name not in params:
            continue
        kernel = params[name]
        k = kernel.shape[0]
        sq = kernel.reshape(k, -1).pow(2)
        total = total + scales[scale_name] * 0.5 * sq.sum(dim=1) / sq.shape[1]
    return total


def ramp_weight(epoch: int, start: int, increase: int) -> float:
    """Weight of a ramped loss term: clip((epoch - start + 1) / (increase + 1), 0, 1).

    Examples
    --------
    >>> [ramp_weight(e, 0, 1) for e in range(3)]
    [0.5, 1.0, 1.0]
    """
    return min(max((epoch - start + 1) / (increase + 1), 0.0), 1.0)


def population_loss(
    out: dict[str, torch.Tensor],
    target: torch.Tensor,
    grad_mask: torch.Tensor,
    params: dict[str, torch.Tensor],
    hparams: dict[str, torch.Tensor],
    cfg: LFADSConfig,
    w_kl: float,
    w_l2: float,
) -> dict[str, torch.Tensor]:
    """loss = NLL + w_l2 L2 + w_kl (kl_ic_scale KL_ic + kl_co_scale KL_co), per member.

    Parameters
    ----------
    out : dict from ``network.forward``
    target : Tensor (B, T_out, N_out), NaN where unobserved
    grad_mask : bool Tensor (K, B, T_out, N_out)
        The NLL is the mean over these elements (the only ones that send gradient).
    params : dict name -> Tensor (K, ...)
    hparams : dict name -> Tensor (K,)
    cfg : LFADSConfig
    w_kl, w_l2 : float
        Ramp weights of this epoch.

    Returns
    -------
    dict of Tensor (K,): 'loss', 'nll', 'kl_ic', 'kl_co', 'l2'.
    """
    nll = masked_poisson_nll(out["log_rates"], target, grad_mask)
    kl_ic = kl_initial_condition(
        out["ic_mean"], out["ic_std"], params["ic_prior.mean"], cfg.ic_prior_var
    )
    kl_co = torch.zeros_like(kl_ic)
    if cfg.co_dim > 0:
        kl_co = kl_inferred_inputs(
            out["u"],
            out["co_mean"],
            out["co_std"],
            params["co_prior.log_tau"],
            params["co_prior.log_var"],
        )
    l2 = l2_penalty(params, hparams)
    kl = hparams["kl_ic_scale"] * kl_ic + hparams["kl_co_scale"] * kl_co
    loss = nll + w_l2 * l2 + w_kl * kl
    return {"loss": loss, "nll": nll, "kl_ic": kl_ic, "kl_co": kl_co, "l2": l2}
