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

__all__ = [
    "gru_step",
    "gru_step_reference",
    "run_gru",
    "run_gru_unclipped",
    "linear",
    "dropout_keep",
    "init_normal",
]


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
        reset_update = torch.add(x_gates[..., : 2 * hidden], h_gates[..., : 2 * hidden])
        reset_update.sigmoid_()
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        h_cand = h_gates[..., 2 * hidden :]
        candidate = torch.addcmul(x_gates[..., 2 * hidden :], reset, h_cand).tanh_()
        # z * h + (1 - z) * n, written with one fewer elementwise op
        new_h = torch.addcmul(candidate, update, h - candidate)
        if cell_clip is None:  # the caller knows the clip cannot act
            ctx.save_for_backward(h, w_hh, reset_update, h_cand, candidate)
            return new_h
        inside = new_h.abs() <= cell_clip
        ctx.save_for_backward(h, w_hh, reset_update, h_cand, candidate, inside)
        return new_h.clamp_(-cell_clip, cell_clip)

    @staticmethod
    def backward(ctx, grad_out):
        h, w_hh, reset_update, h_cand, candidate, *inside = ctx.saved_tensors
        hidden = h.shape[-1]
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        grad = grad_out * inside[0] if inside else grad_out  # clipped units pass no gradient
        grad_update = grad * update
        d_gates_x = torch.empty(
            (*grad.shape[:-1], 3 * hidden), dtype=grad.dtype, device=grad.device
        )
        d_reset_update, d_cand = d_gates_x[..., : 2 * hidden], d_gates_x[..., 2 * hidden :]
        # d candidate pre-activation = grad (1 - z) (1 - n^2)
        torch.sub(grad, grad_update, out=d_cand)
        d_cand.addcmul_(d_cand * candidate, candidate, value=-1.0)
        torch.mul(d_cand, h_cand, out=d_reset_update[..., :hidden])
        torch.mul(grad, h - candidate, out=d_reset_update[..., hidden:])
        d_reset_update.mul_(torch.addcmul(reset_update, reset_update, reset_update, value=-1.0))
        d_gates_h = d_gates_x.clone()
        d_gates_h[..., 2 * hidden :].mul_(reset)
        d_h = torch.baddbmm(grad_update, d_gates_h, w_hh.transpose(1, 2))
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
    cell_clip : float or None
        The new state is clipped to [-cell_clip, cell_clip]; None skips the clip (exact when
        the caller knows it cannot act, see ``run_gru_unclipped``).

    Returns
    -------
    Tensor (P, B, H): the new hidden state.
    """
    return _GRUStep.apply(x_gates, h, w_hh, b_hh, None if cell_clip is None else float(cell_clip))


def gru_step_reference(x_gates, h, w_hh, b_hh, cell_clip):
    """The same step in plain autograd ops (reference for tests)."""
    hidden = h.shape[-1]
    h_gates = torch.baddbmm(b_hh, h, w_hh)
    reset = torch.sigmoid(x_gates[..., :hidden] + h_gates[..., :hidden])
    update = torch.sigmoid(x_gates[..., hidden : 2 * hidden] + h_gates[..., hidden : 2 * hidden])
    candidate = torch.tanh(x_gates[..., 2 * hidden :] + reset * h_gates[..., 2 * hidden :])
    return (update * h + (1 - update) * candidate).clamp(-cell_clip, cell_clip)


def gru_step_into(x_t, h, w_hh, b_hh, h_gates, reset_update, candidate, out):
    """One unclipped GRU step that keeps its intermediates for a hand-written backward.

    ``x_t`` (P, B, 3H) input gates, ``h`` (P, B, H), ``w_hh`` (P, H, 3H), ``b_hh`` (P, 1, 3H);
    the recurrent gates (P, B, 3H), sigmoid(reset, update) (P, B, 2H), the candidate (P, B, H)
    and the new state (P, B, H) are written into the given buffers; returns ``out``.
    """
    hidden = h.shape[-1]
    torch.baddbmm(b_hh, h, w_hh, out=h_gates)
    torch.add(x_t[..., : 2 * hidden], h_gates[..., : 2 * hidden], out=reset_update).sigmoid_()
    reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
    torch.addcmul(x_t[..., 2 * hidden :], reset, h_gates[..., 2 * hidden :], out=candidate)
    candidate.tanh_()
    # z * h + (1 - z) * n = n + z * (h - n)
    return torch.addcmul(candidate, update, h - candidate, out=out)


def gru_step_backward_into(grad, h_prev, h_gates, reset_update, candidate, w_hh_t, d_x, d_gates_h):
    """Backward of ``gru_step_into`` given ``grad`` (P, B, H) of the new state.

    Writes the input-gate gradient into ``d_x`` (P, B, 3H) and the recurrent-gate gradient
    (what the kernel's gradient ``h_prev^T d_gates_h`` needs) into ``d_gates_h``; ``w_hh_t`` is
    the transposed kernel (P, 3H, H). Returns the gradient of the previous state (P, B, H).
    """
    hidden = h_prev.shape[-1]
    reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
    d_ru, d_cand = d_x[..., : 2 * hidden], d_x[..., 2 * hidden :]
    grad_update = grad * update
    # d candidate pre-activation = grad (1 - z) (1 - n^2)
    torch.sub(grad, grad_update, out=d_cand)
    d_cand.addcmul_(d_cand * candidate, candidate, value=-1.0)
    torch.mul(d_cand, h_gates[..., 2 * hidden :], out=d_ru[..., :hidden])
    torch.mul(grad, h_prev - candidate, out=d_ru[..., hidden:])
    d_ru.mul_(torch.addcmul(reset_update, reset_update, reset_update, value=-1.0))  # s (1 - s)
    d_gates_h[..., : 2 * hidden].copy_(d_ru)
    torch.mul(d_cand, reset, out=d_gates_h[..., 2 * hidden :])
    return torch.baddbmm(grad_update, d_gates_h, w_hh_t)


class _GRUSequence(torch.autograd.Function):
    """A whole GRU sequence as one autograd node (for states that cannot reach the clip).

    Compared with one ``_GRUStep`` node per step, the backward pass writes every step's gate
    gradients into one preallocated buffer (no ``cat`` of per-step pieces), computes the
    recurrent kernel's gradient as one large matrix product over all steps instead of one
    small product and one accumulation per step, and records no per-step graph. Internal
    buffers, the gate gradients included, are time-major so that each step writes one
    contiguous block (a step's slice of a population-major (P, T, B, 3H) buffer would be P
    scattered pieces). The input gradient is returned as a transposed view of its
    time-major buffer.
    """

    @staticmethod
    def forward(ctx, x_gates, h0, w_hh, b_hh):
        n_pop, n_time, n_batch, three_h = x_gates.shape
        hidden = three_h // 3
        b_hh = b_hh.unsqueeze(1)
        new = x_gates.new_empty
        h_gates = new(n_time, n_pop, n_batch, three_h)
        reset_update = new(n_time, n_pop, n_batch, 2 * hidden)
        candidate = new(n_time, n_pop, n_batch, hidden)
        states = new(n_time, n_pop, n_batch, hidden)
        h = h0
        for t in range(n_time):
            h = gru_step_into(
                x_gates[:, t], h, w_hh, b_hh, h_gates[t], reset_update[t], candidate[t], states[t]
            )
        ctx.save_for_backward(h0, w_hh, h_gates, reset_update, candidate, states)
        return states.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_states):
        h0, w_hh, h_gates, reset_update, candidate, states = ctx.saved_tensors
        n_time, n_pop, n_batch, hidden = states.shape
        h_prev = torch.cat([h0.unsqueeze(0), states[:-1]], dim=0)  # (T, P, B, H)
        d_x = grad_states.new_empty(n_time, n_pop, n_batch, 3 * hidden)
        d_gates_h = grad_states.new_empty(n_time, n_pop, n_batch, 3 * hidden)
        w_hh_t = w_hh.transpose(1, 2)
        d_h = torch.zeros_like(h0)
        for t in range(n_time - 1, -1, -1):
            d_h = gru_step_backward_into(
                grad_states[:, t] + d_h,
                h_prev[t],
                h_gates[t],
                reset_update[t],
                candidate[t],
                w_hh_t,
                d_x[t],
                d_gates_h[t],
            )
        flat_h = h_prev.transpose(0, 1).reshape(n_pop, n_time * n_batch, hidden)
        flat_dgh = d_gates_h.transpose(0, 1).reshape(n_pop, n_time * n_batch, 3 * hidden)
        d_w_hh = torch.bmm(flat_h.transpose(1, 2), flat_dgh)
        d_b_hh = flat_dgh.sum(dim=1)
        d_x = d_x.transpose(0, 1)
        return d_x, d_h, d_w_hh, d_b_hh


def run_gru_unclipped(
    x_gates: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """Run a population GRU with no state clipping, the sequence as one autograd node.

    Exact for any clip >= max(1, |h0|): a GRU state is a convex combination of the previous
    state and a tanh in (-1, 1), so it never leaves [-max(1, |h0|), max(1, |h0|)].

    Parameters
    ----------
    x_gates : Tensor (P, T, B, 3H)
    h0 : Tensor (P, B, H)
    w_hh : Tensor (P, H, 3H)
    b_hh : Tensor (P, 3H)

    Returns
    -------
    Tensor (P, T, B, H) (a transposed view of time-major storage).

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 4, 3, 15)
    >>> run_gru_unclipped(x, torch.zeros(2, 3, 5), torch.zeros(2, 5, 15), torch.zeros(2, 15)).shape
    torch.Size([2, 4, 3, 5])
    """
    return _GRUSequence.apply(x_gates, h0, w_hh, b_hh)


def run_gru(
    x_gates: torch.Tensor,
    h0: torch.Tensor,
    w_hh: torch.Tensor,
    b_hh: torch.Tensor,
    cell_clip: float | None,
) -> torch.Tensor:
    """Run a population GRU over time; only the recurrent matmul happens per step.

    When the clip cannot act (``cell_clip`` None, as a caller that knows it passes, or
    ``cell_clip >= max(1, |h0|)``, which reads h0 to the host) the sequence runs as one
    autograd node (``run_gru_unclipped``); otherwise one fused node per step.

    Parameters
    ----------
    x_gates : Tensor (P, T, B, 3H)
        Input projections of all steps (time-major), input bias included.
    h0 : Tensor (P, B, H)
    w_hh : Tensor (P, H, 3H)
    b_hh : Tensor (P, 3H)
    cell_clip : float or None

    Returns
    -------
    Tensor (P, T, B, H): hidden states after each step.
    """
    if cell_clip is None or (cell_clip >= 1.0 and float(h0.detach().abs().max()) <= cell_clip):
        return run_gru_unclipped(x_gates, h0, w_hh, b_hh)
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
