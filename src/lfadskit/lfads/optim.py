"""Adam for a population: per-member learning rate, step count and gradient-norm clip.

The optimizer state is a plain dict of tensors with the population axis first, so a member's
state can be copied onto another with ``copy_member`` (what PBT's exploit step needs).

Examples
--------
>>> import torch
>>> params = {"w": torch.zeros(2, 3, requires_grad=True)}
>>> opt = PopulationAdam(params)
>>> grads = {"w": torch.ones(2, 3)}
>>> norms = opt.step(grads, lr=torch.tensor([0.1, 0.0]), active=torch.tensor([True, True]))
>>> params["w"].double().round(decimals=4).tolist()  # Adam's first step moves by lr
[[-0.1, -0.1, -0.1], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import torch

__all__ = ["PopulationAdam", "copy_member", "member_grad_norm"]


def member_grad_norm(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """L2 norm of each member's slice of all gradients, shape (K,)."""
    total = None
    for g in grads.values():
        sq = g.reshape(g.shape[0], -1).pow(2).sum(dim=1)
        total = sq if total is None else total + sq
    return total.sqrt()


class PopulationAdam:
    """Adam (betas 0.9/0.999) with per-member lr, clip and an active mask.

    Parameters
    ----------
    params : dict name -> Tensor (K, ...)
        Leaf tensors updated in place.
    betas : tuple of float
    eps : float
    grad_clip : float
        Each member's gradient is scaled so its norm over all of that member's parameters is
        at most ``grad_clip``.
    """

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        grad_clip: float = 200.0,
    ):
        self.params = params
        self.betas = betas
        self.eps = eps
        self.grad_clip = grad_clip
        first = next(iter(params.values()))
        k = first.shape[0]
        self.state = {
            "step": torch.zeros(k, dtype=torch.int64, device=first.device),
            **{f"m.{n}": torch.zeros_like(p, requires_grad=False) for n, p in params.items()},
            **{f"v.{n}": torch.zeros_like(p, requires_grad=False) for n, p in params.items()},
        }

    @torch.no_grad()
    def step(
        self, grads: dict[str, torch.Tensor], lr: torch.Tensor, active: torch.Tensor
    ) -> torch.Tensor:
        """Update the active members; inactive members keep their weights and state.

        Parameters
        ----------
        grads : dict name -> Tensor (K, ...), same names as the parameters
        lr : Tensor (K,)
        active : bool Tensor (K,)
            Members allowed to update (not stopped, not failed, finite gradient).

        Returns
        -------
        Tensor (K,): gradient norm of each member before clipping.
        """
        norms = member_grad_norm(grads)
        active = active & torch.isfinite(norms)
        clip_scale = torch.clamp(self.grad_clip / (norms + 1e-6), max=1.0)
        beta1, beta2 = self.betas
        step = self.state["step"] + active.long()
        self.state["step"] = step
        safe_step = step.clamp(min=1).to(torch.float64)
        bias1 = (1.0 - beta1**safe_step).to(lr.dtype)
        bias2 = (1.0 - beta2**safe_step).to(lr.dtype)
        for name, p in self.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            on = active.reshape(shape)
            g = grads[name] * clip_scale.reshape(shape)
            m_old, v_old = self.state[f"m.{name}"], self.state[f"v.{name}"]
            m = torch.where(on, beta1 * m_old + (1.0 - beta1) * g, m_old)
            v = torch.where(on, beta2 * v_old + (1.0 - beta2) * g * g, v_old)
            self.state[f"m.{name}"], self.state[f"v.{name}"] = m, v
            update = (
                (lr / bias1).reshape(shape) * m / (torch.sqrt(v / bias2.reshape(shape)) + self.eps)
            )
            p.copy_(torch.where(on, p - update, p))
        return norms

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: t.clone() for name, t in self.state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.state) ^ set(state)
        if missing:
            raise ValueError(f"optimizer state: keys do not match: {sorted(missing)}")
        self.state = {name: t.clone().to(self.state[name].device) for name, t in state.items()}


@torch.no_grad()
def copy_member(
    params: dict[str, torch.Tensor],
    optimizer: PopulationAdam | None,
    src: int,
    dst: int,
) -> None:
    """Copy member ``src``'s weights (and optimizer state) onto member ``dst`` in place.

    Hyperparameters are not touched: re-apply them after a copy (PBT's rule).

    Examples
    --------
    >>> import torch
    >>> p = {"w": torch.tensor([[1.0], [2.0]], requires_grad=True)}
    >>> copy_member(p, PopulationAdam(p), src=1, dst=0)
    >>> p["w"].tolist()
    [[2.0], [2.0]]
    """
    for tensor in params.values():
        tensor[dst] = tensor[src]
    if optimizer is not None:
        for tensor in optimizer.state.values():
            tensor[dst] = tensor[src]
