"""Population building blocks: every weight has a leading population axis.

Shapes: ``P`` is a population-like leading axis (K members, or K x directions), ``B`` trials,
``T`` time steps, ``H`` hidden units. Gates are ordered (reset, update, candidate), as in
``torch.nn.GRU``: the reset gate multiplies the recurrent candidate term after the matrix
product, so one fused (H, 3H) recurrent matmul per step suffices.

Examples
--------
>>> import torch
>>> P, B, T, H = 2, 3, 4, 5
>>> x_gates = torch.zeros(P, T, B, 3 * H)
>>> w_hh, b_hh = torch.zeros(P, H, 3 * H), torch.zeros(P, 3 * H)
>>> states = run_gru(x_gates, torch.zeros(P, B, H), w_hh, b_hh, cell_clip=5.0)
>>> states.shape
torch.Size([2, 4, 3, 5])
"""

from __future__ import annotations

import torch

__all__ = ["gru_step", "gru_step_reference", "run_gru", "linear", "dropout_keep", "init_normal"]


class _GRUStep(torch.autograd.Function):
    """A fused GRU step with a hand-written backward.

    Autograd of the plain expression records ~15 small ops per step (slices, gates, clip),
    and slice backwards allocate full-size zero tensors; one custom node per step is several
    times cheaper on a CPU. ``tests/test_lfads_layers.py`` checks it with gradcheck.
    """

    @staticmethod
    def forward(ctx, x_gates, h, w_hh, b_hh, cell_clip):
        hidden = h.shape[-1]
        h_gates = torch.baddbmm(b_hh, h, w_hh)
        reset_update = torch.sigmoid(x_gates[..., : 2 * hidden] + h_gates[..., : 2 * hidden])
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        h_cand = h_gates[..., 2 * hidden :]
        candidate = torch.tanh(x_gates[..., 2 * hidden :] + reset * h_cand)
        # z * h + (1 - z) * n, written with one fewer elementwise op
        new_h = candidate + update * (h - candidate)
        inside = new_h.abs() <= cell_clip
        ctx.save_for_backward(h, w_hh, reset_update, h_cand, candidate, inside)
        return new_h.clamp(-cell_clip, cell_clip)

    @staticmethod
    def backward(ctx, grad_out):
        h, w_hh, reset_update, h_cand, candidate, inside = ctx.saved_tensors
        hidden = h.shape[-1]
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        grad = grad_out * inside  # clipped units pass no gradient
        d_pre_cand = grad * (1.0 - update) * (1.0 - candidate * candidate)
        d_gates_x = torch.empty(
            (*grad.shape[:-1], 3 * hidden), dtype=grad.dtype, device=grad.device
        )
        d_reset_update = d_gates_x[..., : 2 * hidden]
        d_reset_update[..., :hidden] = d_pre_cand * h_cand
        d_reset_update[..., hidden:] = grad * (h - candidate)
        d_reset_update.mul_(reset_update * (1.0 - reset_update))
        d_gates_x[..., 2 * hidden :] = d_pre_cand
        d_gates_h = d_gates_x.clone()
        d_gates_h[..., 2 * hidden :] = d_pre_cand * reset
        d_h = torch.baddbmm(grad * update, d_gates_h, w_hh.transpose(1, 2))
        d_w_hh = torch.bmm(h.transpose(1, 2), d_gates_h)
        d_b_hh = d_gates_h.sum(dim=1, keepdim=True)
        return d_gates_x, d_h, d_w_hh, d_b_hh, None


def gru_step(
    x_gates: torch.Tensor,
    h: torch.Tensor,
    w_hh: torch.Tensor,
    b_hh: torch.Tensor,
    cell_clip: float,
) -> torch.Tensor:
    """One GRU step for a population.

    Parameters
    ----------
    x_gates : Tensor (P, B, 3H)
        Input projection of this step, input bias included (precomputed for all steps).
    h : Tensor (P, B, H)
        Previous hidden state.
    w_hh : Tensor (P, H, 3H)
        Recurrent kernel (reset, update, candidate).
    b_hh : Tensor (P, 1, 3H)
        Recurrent bias (broadcast over trials).
    cell_clip : float
        The new state is clipped to [-cell_clip, cell_clip].

    Returns
    -------
    Tensor (P, B, H): the new hidden state.
    """
    return _GRUStep.apply(x_gates, h, w_hh, b_hh, float(cell_clip))


def gru_step_reference(x_gates, h, w_hh, b_hh, cell_clip):
    """The same step in plain autograd ops (reference for tests)."""
    hidden = h.shape[-1]
    h_gates = torch.baddbmm(b_hh, h, w_hh)
    reset = torch.sigmoid(x_gates[..., :hidden] + h_gates[..., :hidden])
    update = torch.sigmoid(x_gates[..., hidden : 2 * hidden] + h_gates[..., hidden : 2 * hidden])
    candidate = torch.tanh(x_gates[..., 2 * hidden :] + reset * h_gates[..., 2 * hidden :])
    return (update * h + (1 - update) * candidate).clamp(-cell_clip, cell_clip)


def run_gru(
    x_gates: torch.Tensor,
    h0: torch.Tensor,
    w_hh: torch.Tensor,
    b_hh: torch.Tensor,
    cell_clip: float,
) -> torch.Tensor:
    """Run a population GRU over time; only the recurrent matmul happens per step.

    Parameters
    ----------
    x_gates : Tensor (P, T, B, 3H)
        Input projections of all steps (time-major), input bias included.
    h0 : Tensor (P, B, H)
    w_hh : Tensor (P, H, 3H)
    b_hh : Tensor (P, 3H)
    cell_clip : float

    Returns
    -------
    Tensor (P, T, B, H): hidden states after each step.
    """
    b_hh = b_hh.unsqueeze(1)
    h = h0
    states = []
    # unbind once: indexing x_gates[:, t] per step would cost O(T^2) in the backward pass
    for x_t in x_gates.unbind(1):
        h = gru_step(x_t, h, w_hh, b_hh, cell_clip)
        states.append(h)
    return torch.stack(states, dim=1)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None):
    """Population linear map of x (K, ..., in) with weight (K, in, out) and bias (K, out).

    Examples
    --------
    >>> import torch
    >>> linear(torch.ones(2, 3, 4), torch.ones(2, 4, 5), torch.zeros(2, 5)).shape
    torch.Size([2, 3, 5])
    """
    k = x.shape[0]
    flat = x.reshape(k, -1, x.shape[-1])
    if bias is None:
        out = torch.bmm(flat, weight)
    else:
        out = torch.baddbmm(bias.unsqueeze(1), flat, weight)
    return out.reshape(*x.shape[:-1], weight.shape[-1])


def dropout_keep(uniform: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Scaled keep-mask of inverted dropout from uniforms, with a per-member rate.

    Parameters
    ----------
    uniform : Tensor (K, ...)
        Uniform [0, 1) draws of each member's own random stream.
    rate : Tensor (K,)
        Dropout rate of each member, in [0, 1).

    Returns
    -------
    Tensor (K, ...): 1 / (1 - rate) where kept, 0 where dropped.

    Examples
    --------
    >>> import torch
    >>> dropout_keep(torch.tensor([[0.1, 0.9]]), torch.tensor([0.5])).tolist()
    [[0.0, 2.0]]
    """
    rate = rate.reshape(-1, *([1] * (uniform.dim() - 1)))
    return (uniform >= rate).to(uniform.dtype) / (1.0 - rate)


def init_normal(shape: tuple[int, ...], fan_in: int, generator: torch.Generator):
    """Normal weights with standard deviation 1/sqrt(fan_in) (as in LFADS)."""
    return torch.randn(shape, generator=generator) / fan_in**0.5
