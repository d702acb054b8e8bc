"""Training a population of LFADS models in lockstep.

One epoch, top to bottom (``PopulationTrainer.train_epoch``):

1. shuffle the train trials (one shared batch order) and split them into near-equal batches;
2. per batch: each member draws its CD mask and dropout/posterior noise from its own stream;
   forward all members at once; loss_k = NLL + w_l2 L2 + w_kl (kl_ic_scale KL_ic +
   kl_co_scale KL_co); a member whose loss is not finite is marked failed; Adam step with
   per-member lr and gradient clip for the members still training;
3. evaluate (eval mode, posterior mean, no dropout, no CD): validation NLL on the held-in
   neurons and window bins of the valid trials (never their held-out neurons), and the SV NLL;
4. once the KL/L2 ramps are complete: smooth the selection metric (s <- 0.3 s + 0.7 value),
   keep each member's best weights, stop members that ran out of patience;
5. write a checkpoint when a run directory is given.

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> from lfadskit.lfads.config import LFADSConfig
>>> counts = np.random.default_rng(0).poisson(1.0, size=(12, 8, 5))
>>> cfg = LFADSConfig(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4, fac_dim=2,
...                   max_epochs=2, kl_increase_epoch=0, l2_increase_epoch=0)
>>> result = fit_population(SpikeData(spikes=counts), cfg, {"lr": [1e-3, 4e-3]}, seeds=[0, 1])
>>> len(result.history), result.params["gen.w_hh"].shape[0]
(2, 2)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lfadskit.data import SpikeData
from lfadskit.lfads.config import SEARCHABLE, LFADSConfig
from lfadskit.lfads.masks import apply_sample_validation, sample_validation_mask, training_masks
from lfadskit.lfads.memory import keep_freed_memory
from lfadskit.lfads.network import Sizes, draw_noise, forward, init_params
from lfadskit.lfads.objective import masked_poisson_nll, population_loss, ramp_weight
from lfadskit.lfads.optim import PopulationAdam, copy_member
from lfadskit.runs import write_torch

__all__ = [
    "PopulationTrainer",
    "PopulationResult",
    "fit_population",
    "CHECKPOINT",
]

CHECKPOINT = "checkpoint.pt"
SMOOTHING = 0.7  # weight of the new value in s <- 0.3 s + 0.7 value


@dataclass
class PopulationResult:
    """What a population fit returns.

    Attributes
    ----------
    params : dict name -> Tensor (K, ...)
        Best weights of each member (last weights when no epoch was counted).
    config : LFADSConfig
    sizes : Sizes
    hparams : dict name -> list of K floats
    seeds : list of int
    history : list of dict
        One dict per epoch; values are lists of K numbers (or a number for shared values).
    best_epoch : list of int
        Epoch of each member's best smoothed metric (-1: never counted).
    best_metric : list of float
    status : list of str
        'running' (hit max_epochs), 'stopped' (early stopping) or 'failed' (non-finite loss).
    """

    params: dict[str, torch.Tensor]
    config: LFADSConfig
    sizes: Sizes
    hparams: dict[str, list[float]]
    seeds: list[int]
    history: list[dict]
    best_epoch: list[int]
    best_metric: list[float]
    status: list[str]


def _derived_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


class PopulationTrainer:
    """A population of K LFADS models training in lockstep on one device.

    Parameters
    ----------
    data : SpikeData
    config : LFADSConfig
        Shared settings; its searchable fields are the defaults of ``hparams``.
    hparams : dict name -> sequence of K floats, optional
        Per-member values of any of ``SEARCHABLE``; K comes from these lengths (or seeds).
    seeds : list of int, optional
        Seed of each member's weights and random streams (default: config.seed + k).
    device : str or torch.device
    run_dir : path, optional
        Where ``checkpoint.pt`` is written after every epoch.
    callback : callable(record, trainer), optional
        Called after every epoch with that epoch's history record.
    """

    def __init__(
        self,
        data: SpikeData,
        config: LFADSConfig,
        hparams: dict[str, Sequence[float]] | None = None,
        seeds: Sequence[int] | None = None,
        device: str | torch.device = "cpu",
        run_dir: str | os.PathLike | None = None,
        callback: Callable[[dict, PopulationTrainer], None] | None = None,
    ):
        if not isinstance(data, SpikeData):
            raise TypeError(f"data: expected a SpikeData, got {type(data).__name__}")
        keep_freed_memory()  # large per-batch buffers would be page-faulted anew otherwise
        hparams = dict(hparams or {})
        unknown = sorted(set(hparams) - set(SEARCHABLE))
        if unknown:
            raise ValueError(f"hparams: unknown name(s) {unknown}; valid names: {SEARCHABLE}")
        lengths = {len(v) for v in hparams.values()}
        if seeds is not None:
            lengths.add(len(seeds))
        if len(lengths) > 1:
            raise ValueError(f"hparams/seeds: lengths differ ({sorted(lengths)}); give K each")
        k = lengths.pop() if lengths else 1
        if k < 1:
            raise ValueError("hparams/seeds: need at least one member")
        self.config, self.k, self.device = config, k, torch.device(device)
        self.seeds = (
            [int(s) for s in seeds] if seeds is not None else [config.seed + i for i in range(k)]
        )
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callback = callback
        self._set_data(data)
        self.hparams = {}
        for name in SEARCHABLE:
            self.set_hparam(name, hparams.get(name, [getattr(config, name)] * k))

        init_gens = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.params = init_params(config, self.sizes, init_gens, self._readout_bias(), device)
        self.generators = [
            torch.Generator(self.device).manual_seed(_derived_seed(s, 1)) for s in self.seeds
        ]
        self.shuffle_gen = torch.Generator().manual_seed(_derived_seed(config.seed, 2))
        self.optimizer = PopulationAdam(
            self.params, eps=config.adam_eps, grad_clip=config.grad_clip
        )
        self.epoch = 0
        self.history: list[dict] = []
        self.best_params = {n: p.detach().clone() for n, p in self.params.items()}
        self.best_metric = [math.inf] * k
        self.best_epoch = [-1] * k
        self.smoothed = [math.nan] * k
        self.bad_epochs = [0] * k
        self.status = ["running"] * k

    # ----------------------------------------------------------------- setup
    def _set_data(self, data: SpikeData) -> None:
        cfg, dev = self.config, self.device
        self.data = data
        self.sizes = Sizes(
            data.n_neurons,
            data.n_neurons_out,
            0 if data.ext_input is None else data.ext_input.shape[2],
        )
        self.n_timesteps, self.n_timesteps_out = data.n_timesteps, data.n_timesteps_out
        spikes = torch.as_tensor(data.spikes, device=dev)
        self.recon = torch.as_tensor(data.recon, device=dev)
        self.sv_mask = torch.as_tensor(
            sample_validation_mask(spikes.shape, cfg.sv_rate, cfg.sv_seed), device=dev
        )
        self.inputs = apply_sample_validation(spikes, self.sv_mask, cfg.sv_rate)
        self.ext = None if data.ext_input is None else torch.as_tensor(data.ext_input, device=dev)
        self.train_idx = torch.as_tensor(data.train_idx, device=dev)
        self.valid_idx = torch.as_tensor(data.valid_idx, device=dev)

    def _readout_bias(self) -> torch.Tensor:
        # start each output neuron at its mean train rate so early epochs fit dynamics, not means
        train = self.data.recon[self.data.train_idx]
        mean = np.nan_to_num(np.nanmean(train, axis=(0, 1)), nan=0.0)
        return torch.as_tensor(np.log(np.maximum(mean, 1e-3)), dtype=torch.float32)

    # ------------------------------------------------------- member control
    def set_hparam(self, name: str, values: Sequence[float]) -> None:
        """Set a searchable hyperparameter of every member (between epochs)."""
        if name not in SEARCHABLE:
            raise ValueError(f"hparams: unknown name {name!r}; valid names: {SEARCHABLE}")
        values = [float(v) for v in values]
        if len(values) != self.k:
            raise ValueError(f"hparams[{name!r}]: expected {self.k} values, got {len(values)}")
        for v in values:
            bad = not math.isfinite(v) or v < 0 or (name in ("dropout", "cd_rate") and v >= 1)
            if bad or (name == "lr" and v <= 0):
                allowed = (
                    "[0, 1)"
                    if name in ("dropout", "cd_rate")
                    else ("> 0" if name == "lr" else ">= 0")
                )
                raise ValueError(f"hparams[{name!r}]: {v} not allowed; expected {allowed}")
        self.hparams[name] = torch.tensor(values, dtype=torch.float32, device=self.device)

    def set_member_hparams(self, member: int, **values: float) -> None:
        """Set some hyperparameters of one member, e.g. ``set_member_hparams(3, lr=1e-3)``."""
        for name, value in values.items():
            if name not in SEARCHABLE:
                raise ValueError(f"hparams: unknown name {name!r}; valid names: {SEARCHABLE}")
            current = self.hparams[name].tolist()
            current[member] = value
            self.set_hparam(name, current)

    def hparams_list(self) -> dict[str, list[float]]:
        return {name: v.tolist() for name, v in self.hparams.items()}

    def copy_member(self, src: int, dst: int) -> None:
        """Copy weights, optimizer state, best checkpoint and early-stopping state src -> dst.

        Hyperparameters are not copied; set them afterwards (``set_member_hparams``).
        """
        copy_member(self.params, self.optimizer, src, dst)
        with torch.no_grad():
            for tensor in self.best_params.values():
                tensor[dst] = tensor[src]
        for attr in ("best_metric", "best_epoch", "smoothed", "bad_epochs", "status"):
            getattr(self, attr)[dst] = getattr(self, attr)[src]

    @property
    def active(self) -> torch.Tensor:
        return torch.tensor([s == "running" for s in self.status], device=self.device)

    # -------------------------------------------------------------- training
    def _batches(self) -> list[torch.Tensor]:
        n_train = len(self.train_idx)
        order = self.train_idx[torch.randperm(n_train, generator=self.shuffle_gen).to(self.device)]
        n_batches = math.ceil(n_train / self.config.batch_size)
        return list(torch.tensor_split(order, n_batches))

    def _train_step(self, idx: torch.Tensor, w_kl: float, w_l2: float) -> dict:
        cfg, hp = self.config, self.hparams
        masked, grad_mask = training_masks(
            self.inputs[idx],
            self.sv_mask[idx],
            hp["cd_rate"].tolist(),
            self.generators,
            self.recon.shape[1:],
        )
        noise = draw_noise(
            self.generators,
            cfg,
            len(idx),
            self.n_timesteps,
            self.n_timesteps_out,
            self.sizes.n_neurons_in,
            hp["dropout"],
            self.device,
        )
        ext = None if self.ext is None else self.ext[idx]
        out = forward(self.params, masked, cfg, self.n_timesteps_out, noise, ext)
        parts = population_loss(out, self.recon[idx], grad_mask, self.params, hp, cfg, w_kl, w_l2)
        loss = parts["loss"]

        active = self.active
        finite = torch.isfinite(loss)
        for member in torch.nonzero(active & ~finite).flatten().tolist():
            self.status[member] = "failed"
        active = active & finite
        total = (torch.where(active, loss, torch.zeros_like(loss)) * cfg.loss_scale).sum()
        names = list(self.params)
        grads = torch.autograd.grad(total, [self.params[n] for n in names], allow_unused=True)
        grads = {
            n: torch.zeros_like(self.params[n]) if g is None else g
            for n, g in zip(names, grads, strict=True)
        }
        norms = self.optimizer.step(grads, hp["lr"], active)
        return {**parts, "grad_norm": norms / cfg.loss_scale}

    @torch.no_grad()
    def evaluate(self) -> dict[str, torch.Tensor]:
        """Eval-mode metrics per member (posterior mean, no dropout, no CD).

        'valid_nll': mean NLL of the held-in neurons in the window bins of the valid trials,
        over the elements the encoder read (not SV-held-out). 'sv_nll' (when sv_rate > 0):
        mean NLL of the SV-held-out elements of all trials.
        """
        t, n_in = self.n_timesteps, self.sizes.n_neurons_in
        use_sv = self.config.sv_rate > 0
        idx = torch.arange(self.data.n_trials, device=self.device) if use_sv else self.valid_idx
        ext = None if self.ext is None else self.ext[idx]
        log_rates = forward(self.params, self.inputs[idx], self.config, t, None, ext)["log_rates"][
            ..., :n_in
        ]
        spikes, sv = self.recon[idx, :t, :n_in], self.sv_mask[idx]
        if use_sv:
            valid_pos = torch.searchsorted(idx, self.valid_idx)
            valid = masked_poisson_nll(log_rates[:, valid_pos], spikes[valid_pos], ~sv[valid_pos])
            return {"valid_nll": valid, "sv_nll": masked_poisson_nll(log_rates, spikes, sv)}
        return {"valid_nll": masked_poisson_nll(log_rates, spikes, ~sv)}

    def train_epoch(self) -> dict:
        """Train every running member for one epoch, evaluate, and update early stopping."""
        cfg, epoch, start = self.config, self.epoch, time.perf_counter()
        w_kl = ramp_weight(epoch, cfg.kl_start_epoch, cfg.kl_increase_epoch)
        w_l2 = ramp_weight(epoch, cfg.l2_start_epoch, cfg.l2_increase_epoch)
        sums, n_seen = {}, 0
        for idx in self._batches():
            parts = self._train_step(idx, w_kl, w_l2)
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value.detach() * len(idx)
            n_seen += len(idx)
        record = {"epoch": epoch, "w_kl": w_kl, "w_l2": w_l2}
        record.update({name: (value / n_seen).tolist() for name, value in sums.items()})
        metrics = self.evaluate()
        record.update({name: value.tolist() for name, value in metrics.items()})
        self._select(metrics[cfg.selection_metric].tolist(), epoch >= cfg.ramp_end_epoch)
        record.update(
            {
                "metric_smoothed": list(self.smoothed),
                "status": list(self.status),
                "hparams": self.hparams_list(),
                "time_s": time.perf_counter() - start,
            }
        )
        self.history.append(record)
        self.epoch += 1
        if self.run_dir is not None:
            self.save_checkpoint(self.run_dir / CHECKPOINT)
        if self.callback is not None:
            self.callback(record, self)
        return record

    def _select(self, values: list[float], counted: bool) -> None:
        for member, value in enumerate(values):
            if self.status[member] != "running":
                continue
            if not math.isfinite(value):
                self.status[member] = "failed"
                continue
            if not counted:
                continue
            s = self.smoothed[member]
            s = value if math.isnan(s) else (1 - SMOOTHING) * s + SMOOTHING * value
            self.smoothed[member] = s
            if s < self.best_metric[member]:
                self.best_metric[member], self.best_epoch[member] = s, self.epoch
                self.bad_epochs[member] = 0
                with torch.no_grad():
                    for name, tensor in self.best_params.items():
                        tensor[member] = self.params[name][member]
            else:
                self.bad_epochs[member] += 1
                if self.bad_epochs[member] >= self.config.patience:
                    self.status[member] = "stopped"

    def run(self, n_epochs: int | None = None) -> PopulationTrainer:
        """Train until ``max_epochs`` (or ``n_epochs`` more) or until no member is running."""
        stop = (
            self.config.max_epochs
            if n_epochs is None
            else min(self.epoch + n_epochs, self.config.max_epochs)
        )
        while self.epoch < stop and "running" in self.status:
            self.train_epoch()
        return self

    def result(self) -> PopulationResult:
        params = {}
        never = torch.tensor([e < 0 for e in self.best_epoch], device=self.device)
        for name, best in self.best_params.items():
            shape = (-1,) + (1,) * (best.dim() - 1)
            params[name] = torch.where(never.reshape(shape), self.params[name].detach(), best)
        return PopulationResult(
            params={n: p.clone() for n, p in params.items()},
            config=self.config,
            sizes=self.sizes,
            hparams=self.hparams_list(),
            seeds=list(self.seeds),
            history=list(self.history),
            best_epoch=list(self.best_epoch),
            best_metric=list(self.best_metric),
            status=list(self.status),
        )

    # --------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: weights, Adam, rng states, history."""
        return {
            "config": self.config.to_dict(),
            "sizes": self.sizes.to_dict(),
            "seeds": list(self.seeds),
            "epoch": self.epoch,
            "params": {n: p.detach().clone() for n, p in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
            "hparams": self.hparams_list(),
            "generators": [g.get_state() for g in self.generators],
            "shuffle_gen": self.shuffle_gen.get_state(),
            "history": list(self.history),
            "best_params": {n: p.clone() for n, p in self.best_params.items()},
            "best_metric": list(self.best_metric),
            "best_epoch": list(self.best_epoch),
            "smoothed": list(self.smoothed),
            "bad_epochs": list(self.bad_epochs),
            "status": list(self.status),
        }

    def load_state_dict(self, state: dict) -> None:
        saved = LFADSConfig.from_dict(state["config"])
        # training may be extended (max_epochs, patience); everything else must match
        differ = [
            name
            for name, value in saved.to_dict().items()
            if name not in ("max_epochs", "patience") and getattr(self.config, name) != value
        ]
        if differ or state["sizes"] != self.sizes.to_dict() or state["seeds"] != self.seeds:
            raise ValueError(
                f"checkpoint: does not match this run (config fields {differ}, sizes or seeds); "
                "start a new run directory or use the same settings"
            )
        with torch.no_grad():
            for name, tensor in self.params.items():
                tensor.copy_(state["params"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, values in state["hparams"].items():
            self.set_hparam(name, values)
        for gen, gen_state in zip(self.generators, state["generators"], strict=True):
            gen.set_state(gen_state)
        self.shuffle_gen.set_state(state["shuffle_gen"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best_params = {n: t.clone().to(self.device) for n, t in state["best_params"].items()}
        for attr in ("best_metric", "best_epoch", "smoothed", "bad_epochs", "status"):
            setattr(self, attr, list(state[attr]))

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the state atomically (temporary file, then rename)."""
        write_torch(path, self.state_dict())

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))


def fit_population(
    data: SpikeData,
    config: LFADSConfig,
    hparams: dict[str, Sequence[float]] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    device: str | torch.device = "cpu",
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    callback: Callable[[dict, PopulationTrainer], None] | None = None,
) -> PopulationResult:
    """Train K LFADS members together and return their best weights and history.

    Parameters
    ----------
    data : SpikeData
        Trains on ``data.train_idx``; selects on ``data.valid_idx`` (held-in neurons only)
        or on SV samples.
    config : LFADSConfig
    hparams : dict name -> sequence of K floats, optional
        Per-member searchable hyperparameters (``SEARCHABLE``); others come from config.
    seeds : list of K int, optional
        Per-member seeds (default config.seed + k). The batch order is shared and seeded by
        config.seed, so member k trains exactly as it would alone with the same seed.
    device : str or torch.device
    run_dir : path, optional
        Writes ``checkpoint.pt`` after every epoch.
    resume : bool
        Continue from ``run_dir/checkpoint.pt`` when it exists.
    callback : callable(record, trainer), optional
        Called after every epoch.

    Returns
    -------
    PopulationResult
    """
    trainer = PopulationTrainer(data, config, hparams, seeds, device, run_dir, callback)
    if resume:
        if run_dir is None:
            raise ValueError("resume: needs run_dir (the folder holding checkpoint.pt)")
        if (Path(run_dir) / CHECKPOINT).is_file():
            trainer.load_checkpoint(Path(run_dir) / CHECKPOINT)
    return trainer.run().result()
