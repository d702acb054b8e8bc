"""Coordinated dropout (CD) and sample validation (SV) as pure functions.

Both return what the encoder reads and which elements may send gradient back; nothing is
carried between calls. See SPEC section 1.

Examples
--------
>>> import torch
>>> counts = torch.ones(2, 3, 4)
>>> masked, grad_mask = coordinated_dropout(counts, 0.5, torch.Generator().manual_seed(0))
>>> bool(((masked == 0) == grad_mask).all())  # gradient only where the input was dropped
True
>>> held = sample_validation_mask((2, 3, 4), 0.25, seed=0)
>>> held.shape, held.dtype
((2, 3, 4), dtype('bool'))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lfadskit.lfads.streams import per_member

__all__ = [
    "coordinated_dropout",
    "sample_validation_mask",
    "apply_sample_validation",
    "training_masks",
]


def _check_rate(name: str, rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: expected a rate in [0, 1), got {rate}")
    return rate


def coordinated_dropout(
    counts: torch.Tensor, cd_rate: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop input elements at random and say which elements may receive gradient.

    Parameters
    ----------
    counts : Tensor (..., n_timesteps, n_neurons)
        Encoder input (spike counts, possibly already SV-masked).
    cd_rate : float
        Drop probability in [0, 1). 0 turns CD off (input unchanged, all elements get
        gradient).
    generator : torch.Generator or None
        Random stream of the mask (one per population member).

    Returns
    -------
    masked_input : Tensor, same shape
        ``counts * keep / (1 - cd_rate)``; its expectation equals ``counts``.
    grad_mask : bool Tensor, same shape
        True where the element was dropped at the input: only those elements' NLL sends
        gradient, so the model is never rewarded for copying a count it read.

    Examples
    --------
    >>> import torch
    >>> x = torch.full((1, 5, 2), 2.0)
    >>> m, g = coordinated_dropout(x, 0.0, None)
    >>> bool(torch.equal(m, x)), bool(g.all())
    (True, True)
    """
    cd_rate = _check_rate("cd_rate", cd_rate)
    if cd_rate == 0.0:
        return counts, torch.ones(counts.shape, dtype=torch.bool, device=counts.device)
    uniform = _cd_uniform(counts, generator)
    return _drop(counts, uniform, torch.tensor(cd_rate, dtype=counts.dtype))


def _cd_uniform(counts: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(counts.shape, generator=generator, device=counts.device, dtype=counts.dtype)


def _drop(
    counts: torch.Tensor, uniform: torch.Tensor, cd_rate: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """CD from uniforms: rate broadcasts against ``uniform`` (a scalar or one per member)."""
    dropped = uniform < cd_rate
    masked = torch.where(dropped, torch.zeros_like(uniform), counts / (1.0 - cd_rate))
    return masked, dropped


def sample_validation_mask(shape: tuple[int, ...], sv_rate: float, seed: int) -> np.ndarray:
    """The fixed SV mask over a whole dataset: True marks a held-out element.

    Drawn once from ``seed``; the same seed gives the same mask in every epoch and for every
    member of a population.

    Parameters
    ----------
    shape : tuple of int
        (n_trials, n_timesteps, n_neurons) of the encoder input.
    sv_rate : float
        Fraction of elements held out, in [0, 1); 0 gives an all-False mask.
    seed : int
        Seed of the mask.

    Returns
    -------
    heldout_mask : ndarray of bool, ``shape``

    Examples
    --------
    >>> m = sample_validation_mask((100, 50, 20), 0.2, seed=1)
    >>> bool(abs(m.mean() - 0.2) < 0.01)
    True
    """
    sv_rate = _check_rate("sv_rate", sv_rate)
    if sv_rate == 0.0:
        return np.zeros(shape, dtype=bool)
    return np.random.default_rng(seed).random(shape) < sv_rate


def apply_sample_validation(
    counts: torch.Tensor, heldout_mask: torch.Tensor, sv_rate: float
) -> torch.Tensor:
    """Zero the SV-held-out elements and scale the kept ones by 1 / (1 - sv_rate).

    Parameters
    ----------
    counts : Tensor (n_trials, n_timesteps, n_neurons)
    heldout_mask : bool Tensor, same shape (from ``sample_validation_mask``)
    sv_rate : float

    Returns
    -------
    Tensor, same shape: the encoder input under SV (expectation preserved).

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(1, 1, 2)
    >>> apply_sample_validation(x, torch.tensor([[[True, False]]]), 0.5).tolist()
    [[[0.0, 2.0]]]
    """
    sv_rate = _check_rate("sv_rate", sv_rate)
    if heldout_mask.shape != counts.shape:
        raise ValueError(
            f"heldout_mask: shape {tuple(heldout_mask.shape)} does not match counts "
            f"{tuple(counts.shape)}"
        )
    return torch.where(heldout_mask, torch.zeros_like(counts), counts / (1.0 - sv_rate))


def training_masks(
    inputs: torch.Tensor,
    sv_heldout: torch.Tensor,
    cd_rates: Sequence[float],
    generators: Sequence[torch.Generator],
    recon_shape: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member CD-masked inputs and the gradient mask of the reconstruction.

    Parameters
    ----------
    inputs : Tensor (B, T, N_in)
        Encoder input of a batch (already SV-masked).
    sv_heldout : bool Tensor (B, T, N_in)
        SV-held-out elements of the batch.
    cd_rates : K floats
    generators : K torch.Generator
        Member k's CD mask is drawn from generators[k].
    recon_shape : (T_out, N_out)

    Returns
    -------
    masked_inputs : Tensor (K, B, T, N_in)
    grad_mask : bool Tensor (K, B, T_out, N_out)
        Held-in window elements send gradient only if CD dropped them (all of them when
        cd_rate is 0) and SV did not hold them out; held-out neurons and forward bins were
        never input and always do (NaN targets are skipped by the loss).
    """
    rates = [_check_rate("cd_rate", r) for r in cd_rates]
    if len(rates) != len(generators):
        raise ValueError(f"cd_rates: {len(rates)} values for {len(generators)} generators")
    # draw each member's uniforms from its own stream (side by side), then mask all at once;
    # a member with cd_rate 0 draws nothing, so its stream matches a model trained alone
    drawing = [g for r, g in zip(rates, generators, strict=True) if r > 0]
    draws = iter(per_member(lambda g: _cd_uniform(inputs, g), drawing))
    uniforms = [next(draws) if r > 0 else torch.ones_like(inputs) for r in rates]
    rate = torch.tensor(rates, dtype=inputs.dtype, device=inputs.device).reshape(-1, 1, 1, 1)
    masked, dropped = _drop(inputs, torch.stack(uniforms), rate)
    dropped = torch.where(rate > 0, dropped, torch.ones_like(dropped))  # no CD: all get gradient
    n_batch, n_time, n_in = inputs.shape
    grad_mask = torch.ones(
        (len(rates), n_batch, *recon_shape), dtype=torch.bool, device=inputs.device
    )
    grad_mask[:, :, :n_time, :n_in] = dropped & ~sv_heldout
    return masked, grad_mask
