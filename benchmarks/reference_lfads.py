"""A straightforward PyTorch LFADS: the yardstick of the speed benchmark.

This is how one would write LFADS with stock ``torch.nn`` modules: ``nn.GRU`` bidirectional
encoders for the initial condition (IC) and the controller input (CI), an ``nn.GRUCell`` loop
for the controller and the generator, ``nn.Dropout``, ``torch.optim.Adam`` and
``clip_grad_norm_``. It has the same sizes, posteriors, priors, KL terms, coordinated dropout,
factor readout, Poisson loss and epoch structure (train batches, then a posterior-mean
validation pass) as ``lfadskit.lfads``, so its epoch time is a fair reference. It is not used
by the package and makes no attempt to match lfadskit's numbers draw for draw.

One difference is idiomatic rather than deliberate: ``nn.GRU`` cannot clip its hidden state
inside the recurrence, so only the controller and generator states are clipped here
(lfadskit clips every GRU). This only removes work from the reference.

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> from lfadskit.lfads import LFADSConfig
>>> counts = np.random.default_rng(0).poisson(1.0, size=(12, 8, 5))
>>> cfg = LFADSConfig(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4, fac_dim=2)
>>> trainer = ReferenceTrainer(SpikeData(spikes=counts), cfg, seed=0)
>>> record = trainer.train_epoch()
>>> sorted(record)
['epoch', 'loss', 'time_s', 'valid_nll']
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lfadskit.data import SpikeData
from lfadskit.lfads import LFADSConfig

__all__ = ["ReferenceLFADS", "ReferenceTrainer", "reference_loss"]

_LOG_2PI = math.log(2.0 * math.pi)


class ReferenceLFADS(nn.Module):
    """LFADS with ``nn.GRU`` encoders and ``nn.GRUCell`` controller and generator.

    Parameters
    ----------
    n_neurons_in : int
        Encoder-input (held-in) neurons.
    n_neurons_out : int
        Output neurons (held-in + held-out).
    config : LFADSConfig
        Sizes, dropout rate and clipping (the other fields are used by the trainer).
    """

    def __init__(self, n_neurons_in: int, n_neurons_out: int, config: LFADSConfig):
        super().__init__()
        cfg = self.config = config
        self.dropout = nn.Dropout(cfg.dropout)
        self.ic_encoder = nn.GRU(n_neurons_in, cfg.ic_enc_dim, batch_first=True, bidirectional=True)
        self.ic_posterior = nn.Linear(2 * cfg.ic_enc_dim, 2 * cfg.ic_dim)
        self.ic_prior_mean = nn.Parameter(torch.zeros(cfg.ic_dim))
        self.gen_init = nn.Linear(cfg.ic_dim, cfg.gen_dim)
        self.use_controller = cfg.co_dim > 0
        if self.use_controller:
            self.ci_encoder = nn.GRU(
                n_neurons_in, cfg.ci_enc_dim, batch_first=True, bidirectional=True
            )
            self.controller = nn.GRUCell(2 * cfg.ci_enc_dim + cfg.fac_dim, cfg.con_dim)
            self.co_posterior = nn.Linear(cfg.con_dim, 2 * cfg.co_dim)
            self.co_prior_log_tau = nn.Parameter(
                torch.full((cfg.co_dim,), math.log(cfg.co_prior_tau))
            )
            self.co_prior_log_var = nn.Parameter(
                torch.full((cfg.co_dim,), math.log(cfg.co_prior_var))
            )
        # without a controller the generator is autonomous; keep one (ignored) input unit
        self.generator = nn.GRUCell(max(cfg.co_dim, 1), cfg.gen_dim)
        self.factors = nn.Linear(cfg.gen_dim, cfg.fac_dim, bias=False)
        self.readout = nn.Linear(cfg.fac_dim, n_neurons_out)

    def _factor(self, gen_state: torch.Tensor) -> torch.Tensor:
        # unit-norm rows of the factor map
        return F.linear(self.dropout(gen_state), F.normalize(self.factors.weight, dim=1))

    def forward(
        self, spikes: torch.Tensor, n_timesteps_out: int, sample: bool = True
    ) -> dict[str, torch.Tensor]:
        """Run the model.

        Parameters
        ----------
        spikes : Tensor (n_trials, n_timesteps, n_neurons_in)
            Encoder input (after coordinated dropout in training).
        n_timesteps_out : int
            Generator steps (n_timesteps + forward bins); inputs are zero after n_timesteps.
        sample : bool
            Draw posterior samples (training) or use the posterior means.

        Returns
        -------
        dict with 'log_rates' (B, T_out, N_out), 'ic_mean', 'ic_std' (B, ic_dim) and, with a
        controller, 'co_mean', 'co_std', 'u' (B, T, co_dim).
        """
        cfg = self.config
        n_trials, n_timesteps, _ = spikes.shape
        x = self.dropout(spikes)
        _, ic_last = self.ic_encoder(x)  # (2, B, E): forward and backward final states
        ic_final = self.dropout(torch.cat([ic_last[0], ic_last[1]], dim=-1))
        ic_mean, ic_logvar = self.ic_posterior(ic_final).chunk(2, dim=-1)
        ic_std = torch.sqrt(torch.exp(ic_logvar) + cfg.ic_post_var_min)
        g0 = ic_mean + ic_std * torch.randn_like(ic_std) if sample else ic_mean
        gen = self.gen_init(g0)
        factor = self._factor(gen)

        if self.use_controller:
            codes, _ = self.ci_encoder(x)  # (B, T, 2 CE)
            fwd, bwd = codes.chunk(2, dim=-1)
            lag = cfg.ci_lag
            if lag > 0:
                # the controller at t reads forward codes up to t - lag, backward from t + lag
                fwd = F.pad(fwd, (0, 0, lag, 0))[:, :n_timesteps]
                bwd = F.pad(bwd, (0, 0, 0, lag))[:, lag:]
            ci = self.dropout(torch.cat([fwd, bwd], dim=-1))
            con = spikes.new_zeros(n_trials, cfg.con_dim)
            co_means, co_stds, us = [], [], []
        zero_input = spikes.new_zeros(n_trials, self.generator.input_size)
        log_rates = []
        for t in range(n_timesteps_out):
            gen_input = zero_input
            if self.use_controller and t < n_timesteps:
                con_input = torch.cat([ci[:, t], self.dropout(factor)], dim=-1)
                con = self.controller(con_input, con).clamp(-cfg.cell_clip, cfg.cell_clip)
                co_mean, co_logvar = self.co_posterior(con).chunk(2, dim=-1)
                co_std = torch.sqrt(torch.exp(co_logvar) + cfg.ic_post_var_min)
                u = co_mean + co_std * torch.randn_like(co_std) if sample else co_mean
                co_means.append(co_mean)
                co_stds.append(co_std)
                us.append(u)
                gen_input = u
            gen = self.generator(gen_input, gen).clamp(-cfg.cell_clip, cfg.cell_clip)
            factor = self._factor(gen)
            log_rates.append(self.readout(factor))

        out = {"log_rates": torch.stack(log_rates, dim=1), "ic_mean": ic_mean, "ic_std": ic_std}
        if self.use_controller:
            out["co_mean"] = torch.stack(co_means, dim=1)
            out["co_std"] = torch.stack(co_stds, dim=1)
            out["u"] = torch.stack(us, dim=1)
        return out


def _masked_poisson_nll(log_rates, counts, mask):
    observed = ~torch.isnan(counts)
    mask = mask & observed
    counts = torch.nan_to_num(counts, nan=0.0)
    nll = torch.exp(log_rates) - counts * log_rates + torch.lgamma(counts + 1.0)
    return (nll * mask).sum() / mask.sum()


def _log_normal(x, mean, var):
    return -0.5 * (_LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)


def reference_loss(
    model: ReferenceLFADS,
    out: dict[str, torch.Tensor],
    target: torch.Tensor,
    grad_mask: torch.Tensor,
    w_kl: float,
    w_l2: float,
) -> dict[str, torch.Tensor]:
    """LFADS loss of one model: NLL + w_l2 L2 + w_kl (scaled KL_ic + scaled KL_co).

    Parameters
    ----------
    model : ReferenceLFADS
    out : dict from ``ReferenceLFADS.forward``
    target : Tensor (B, T_out, N_out), NaN where unobserved
    grad_mask : bool Tensor (B, T_out, N_out)
        Elements whose NLL counts (CD-dropped inputs, held-out neurons, forward bins).
    w_kl, w_l2 : float
        Ramp weights of the epoch.

    Returns
    -------
    dict of scalar Tensors: 'loss', 'nll', 'kl_ic', 'kl_co', 'l2'.
    """
    cfg = model.config
    nll = _masked_poisson_nll(out["log_rates"], target, grad_mask)
    var = out["ic_std"] ** 2
    kl_ic = 0.5 * (
        math.log(cfg.ic_prior_var)
        - torch.log(var)
        + (var + (out["ic_mean"] - model.ic_prior_mean) ** 2) / cfg.ic_prior_var
        - 1.0
    )
    kl_ic = kl_ic.sum(dim=-1).mean()
    kl_co = torch.zeros(())
    if model.use_controller:
        # one-sample estimate against a stationary AR(1) prior per input dimension
        u = out["u"]
        alpha = torch.exp(-1.0 / torch.exp(model.co_prior_log_tau))
        process_var = torch.exp(model.co_prior_log_var)
        prior_mean = F.pad(alpha * u[:, :-1], (0, 0, 1, 0))
        prior_var = torch.cat(
            [
                process_var.expand_as(u[:, :1]),
                (process_var * (1.0 - alpha**2)).expand_as(u[:, 1:]),
            ],
            dim=1,
        )
        log_q = _log_normal(u, out["co_mean"], out["co_std"] ** 2)
        kl_co = (log_q - _log_normal(u, prior_mean, prior_var)).sum(dim=(1, 2)).mean()
    l2 = cfg.l2_gen_scale * 0.5 * model.generator.weight_hh.pow(2).mean()
    if model.use_controller:
        l2 = l2 + cfg.l2_con_scale * 0.5 * model.controller.weight_hh.pow(2).mean()
    loss = nll + w_l2 * l2 + w_kl * (cfg.kl_ic_scale * kl_ic + cfg.kl_co_scale * kl_co)
    return {"loss": loss, "nll": nll, "kl_ic": kl_ic, "kl_co": kl_co, "l2": l2}


def _ramp(epoch: int, start: int, increase: int) -> float:
    return min(max((epoch - start + 1) / (increase + 1), 0.0), 1.0)


class ReferenceTrainer:
    """Train one ``ReferenceLFADS`` epoch by epoch, the way a plain PyTorch script would.

    Parameters
    ----------
    data : SpikeData
        Trains on ``data.train_idx``; validates on ``data.valid_idx`` (held-in neurons).
    config : LFADSConfig
    seed : int
        Seed of the weights, the batch order, dropout and coordinated dropout.
    """

    def __init__(self, data: SpikeData, config: LFADSConfig, seed: int = 0):
        self.data, self.config, self.seed = data, config, seed
        torch.manual_seed(seed)
        self.model = ReferenceLFADS(data.n_neurons, data.n_neurons_out, config)
        train = data.recon[data.train_idx]
        mean = np.nan_to_num(np.nanmean(train, axis=(0, 1)), nan=0.0)
        with torch.no_grad():
            self.model.readout.bias.copy_(torch.as_tensor(np.log(np.maximum(mean, 1e-3))))
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, eps=config.adam_eps
        )
        self.spikes = torch.as_tensor(data.spikes)
        self.recon = torch.as_tensor(data.recon)
        self.train_idx = torch.as_tensor(data.train_idx)
        self.valid_idx = torch.as_tensor(data.valid_idx)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.smoothed = math.nan
        self.best_metric = math.inf
        self.best_state = None

    def _train_step(self, idx: torch.Tensor, w_kl: float, w_l2: float) -> float:
        cfg = self.config
        spikes = self.spikes[idx]
        grad_mask = torch.ones(self.recon[idx].shape, dtype=torch.bool)
        if cfg.cd_rate > 0:
            # coordinated dropout: the NLL counts only the input elements the encoder missed
            dropped = torch.rand(spikes.shape, generator=self.generator) < cfg.cd_rate
            spikes = torch.where(dropped, 0.0, spikes / (1.0 - cfg.cd_rate))
            grad_mask[:, : spikes.shape[1], : spikes.shape[2]] = dropped
        out = self.model(spikes, self.data.n_timesteps_out, sample=True)
        loss = reference_loss(self.model, out, self.recon[idx], grad_mask, w_kl, w_l2)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        (loss * cfg.loss_scale).backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self) -> float:
        """Validation NLL of the held-in neurons in the window bins (posterior mean)."""
        self.model.eval()
        n_time, n_in = self.data.n_timesteps, self.data.n_neurons
        out = self.model(self.spikes[self.valid_idx], n_time, sample=False)
        target = self.recon[self.valid_idx, :n_time, :n_in]
        self.model.train()
        return float(_masked_poisson_nll(out["log_rates"][..., :n_in], target, torch.tensor(True)))

    def train_epoch(self) -> dict:
        """One pass over shuffled train batches, a validation pass and best-weights tracking."""
        cfg, start = self.config, time.perf_counter()
        w_kl = _ramp(self.epoch, cfg.kl_start_epoch, cfg.kl_increase_epoch)
        w_l2 = _ramp(self.epoch, cfg.l2_start_epoch, cfg.l2_increase_epoch)
        n_train = len(self.train_idx)
        order = self.train_idx[torch.randperm(n_train, generator=self.generator)]
        losses = []
        for idx in torch.tensor_split(order, math.ceil(n_train / cfg.batch_size)):
            losses.append(self._train_step(idx, w_kl, w_l2) * len(idx))
        valid_nll = self.evaluate()
        if self.epoch >= cfg.ramp_end_epoch and math.isfinite(valid_nll):
            s = self.smoothed
            self.smoothed = valid_nll if math.isnan(s) else 0.3 * s + 0.7 * valid_nll
            if self.smoothed < self.best_metric:
                self.best_metric = self.smoothed
                self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        record = {
            "epoch": self.epoch,
            "loss": sum(losses) / n_train,
            "valid_nll": valid_nll,
            "time_s": time.perf_counter() - start,
        }
        self.epoch += 1
        return record
