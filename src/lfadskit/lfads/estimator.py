"""``LFADS``: a scikit-learn-style estimator over the population trainer (K = 1).

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> counts = np.random.default_rng(0).poisson(1.0, size=(12, 8, 5))
>>> model = LFADS(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4, fac_dim=2,
...               max_epochs=2, n_samples=4).fit(SpikeData(spikes=counts))
>>> model.predict_rates(SpikeData(spikes=counts)).shape
(12, 8, 5)
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfadskit.data import DataError, SpikeData
from lfadskit.lfads.config import LFADSConfig
from lfadskit.lfads.inference import infer
from lfadskit.lfads.network import Sizes, param_shapes
from lfadskit.lfads.objective import masked_poisson_nll
from lfadskit.lfads.train import PopulationTrainer
from lfadskit.runs import atomic_path, write_torch

__all__ = ["LFADS"]

CONFIG_FILE = "lfads.json"
WEIGHTS_FILE = "weights.pt"


def _flatten_record(record: dict) -> dict:
    # a single model's history: one number per field instead of a list of one
    flat = {}
    for key, value in record.items():
        if key == "hparams":
            flat.update({name: values[0] for name, values in value.items()})
        elif isinstance(value, list):
            flat[key] = value[0]
        else:
            flat[key] = value
    return flat


class ProgressPrinter:
    """Per-epoch progress line: loss, metric, epoch time and estimated time left."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def __call__(self, record: dict, trainer: PopulationTrainer) -> None:
        cfg = trainer.config
        times = [r["time_s"] for r in trainer.history]
        left = np.mean(times[-10:]) * (cfg.max_epochs - trainer.epoch)
        metric = record[cfg.selection_metric]
        print(
            f"epoch {record['epoch'] + 1:4d}/{cfg.max_epochs}  loss {min(record['loss']):.4f}  "
            f"{cfg.selection_metric} {min(metric):.4f}  {record['time_s']:.2f} s/epoch  "
            f"<= {left / 60:.1f} min left",
            file=self.stream,
            flush=True,
        )


class LFADS:
    """LFADS sequential autoencoder (one model; see ``fit_population`` for many).

    Parameters
    ----------
    config : LFADSConfig, optional
        Settings (default ``LFADSConfig()``).
    device : str
        Torch device of training and inference.
    verbose : bool
        Print one progress line per epoch.
    run_dir : path, optional
        Folder for the training checkpoint (``checkpoint.pt``, written every epoch).
    resume : bool
        Continue from ``run_dir/checkpoint.pt`` when it exists.
    **overrides
        Config fields to change, e.g. ``LFADS(gen_dim=64, cd_rate=0.5)``.

    Attributes
    ----------
    config_ : LFADSConfig
        The settings used.
    params_ : dict name -> Tensor (1, ...)
        Best weights.
    history_ : list of dict
        Per-epoch loss parts, metrics, ramp weights, hyperparameters and wall time.
    best_epoch_ : int
        Epoch of the best smoothed selection metric (-1 when the ramps never completed).
    best_metric_ : float
    status_ : str
        'running' (reached max_epochs), 'stopped' (early stopping) or 'failed'.
    n_neurons_in_, n_neurons_out_, n_forward_, n_ext_ : int
        Sizes learned from the data.
    """

    def __init__(
        self,
        config: LFADSConfig | None = None,
        *,
        device: str = "cpu",
        verbose: bool = False,
        run_dir: str | os.PathLike | None = None,
        resume: bool = False,
        **overrides: Any,
    ):
        self.config = config
        self.device = device
        self.verbose = verbose
        self.run_dir = run_dir
        self.resume = resume
        self.overrides = overrides

    # ------------------------------------------------------------------ fit
    def _resolved_config(self) -> LFADSConfig:
        config = self.config if self.config is not None else LFADSConfig()
        if not isinstance(config, LFADSConfig):
            raise ValueError(f"config: expected an LFADSConfig, got {type(config).__name__}")
        return config.replace(**self.overrides) if self.overrides else config

    def fit(self, data: SpikeData) -> LFADS:
        """Train on ``data.train_idx``, select on ``data.valid_idx`` (or SV); returns self."""
        if not isinstance(data, SpikeData):
            raise DataError(f"data: expected a SpikeData, got {type(data).__name__}")
        config = self._resolved_config()
        callback = ProgressPrinter() if self.verbose else None
        trainer = PopulationTrainer(
            data,
            config,
            seeds=[config.seed],
            device=self.device,
            run_dir=self.run_dir,
            callback=callback,
        )
        if self.resume and self.run_dir is not None:
            checkpoint = Path(self.run_dir) / "checkpoint.pt"
            if checkpoint.is_file():
                trainer.load_checkpoint(checkpoint)
        result = trainer.run().result()
        self._set_learned(config, result.sizes, result.params, data.n_forward)
        self.history_ = [_flatten_record(r) for r in result.history]
        self.best_epoch_ = result.best_epoch[0]
        self.best_metric_ = result.best_metric[0]
        self.status_ = result.status[0]
        return self

    @classmethod
    def from_params(
        cls,
        config: LFADSConfig,
        sizes: Sizes,
        params: Mapping[str, torch.Tensor],
        n_forward: int,
        *,
        best_epoch: int = -1,
        best_metric: float = math.inf,
        history: Sequence[Mapping[str, Any]] = (),
        status: str = "running",
        device: str = "cpu",
    ) -> LFADS:
        """A fitted estimator from one population member's weights (e.g. a search's best).

        Parameters
        ----------
        config : LFADSConfig
            Settings of the member, its searchable hyperparameters included.
        sizes : Sizes
            Sizes learned from the data (``PopulationResult.sizes``).
        params : dict name -> Tensor (1, ...)
            The member's weights with a population axis of size one, e.g.
            ``{n: p[k : k + 1] for n, p in result.params.items()}``; copied.
        n_forward : int
            Forward-prediction bins the member was trained to predict (``data.n_forward``).
        best_epoch : int
            Epoch the weights come from (-1: unknown or never counted).
        best_metric : float
            Smoothed selection metric at that epoch (inf: unknown).
        history : list of dict
            Per-epoch records of this member (numbers, not lists of K).
        status : str
            'running', 'stopped', 'failed' or a free label such as 'search'.
        device : str
            Torch device of the weights and of inference.

        Returns
        -------
        LFADS
            Fitted: ``predict``, ``score`` and ``save`` work.

        Raises
        ------
        ValueError
            When a parameter is missing, unexpected, or of the wrong shape for ``config``
            and ``sizes`` (a population axis other than 1 included).

        Examples
        --------
        >>> import numpy as np
        >>> from lfadskit.lfads import LFADSConfig, fit_population
        >>> counts = np.random.default_rng(0).poisson(1.0, size=(12, 8, 5))
        >>> data = SpikeData(spikes=counts)
        >>> cfg = LFADSConfig(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4,
        ...                   fac_dim=2, max_epochs=2, n_samples=2)
        >>> result = fit_population(data, cfg, {"lr": [1e-3, 4e-3]}, seeds=[0, 1])
        >>> second = {name: p[1:2] for name, p in result.params.items()}
        >>> model = LFADS.from_params(cfg, result.sizes, second, data.n_forward)
        >>> model.predict_rates(data).shape
        (12, 8, 5)
        """
        if not isinstance(config, LFADSConfig):
            raise ValueError(f"config: expected an LFADSConfig, got {type(config).__name__}")
        if not isinstance(sizes, Sizes):
            raise ValueError(f"sizes: expected a Sizes, got {type(sizes).__name__}")
        if isinstance(n_forward, bool) or not isinstance(n_forward, int) or n_forward < 0:
            raise ValueError(f"n_forward: expected an integer >= 0, got {n_forward!r}")
        expected = param_shapes(config, sizes)
        missing = sorted(set(expected) - set(params))
        unknown = sorted(set(params) - set(expected))
        if missing or unknown:
            raise ValueError(
                f"params: missing {missing}, unexpected {unknown} for this config and sizes; "
                "pass every weight of one member (PopulationResult.params sliced with [k:k+1])"
            )
        for name, (shape, _) in expected.items():
            got = tuple(params[name].shape)
            if got != (1, *shape):
                raise ValueError(
                    f"params[{name!r}]: shape {got}, expected {(1, *shape)} (population axis "
                    "of size one first; slice a population with [k:k+1])"
                )
        model = cls(config, device=device)
        weights = {n: torch.as_tensor(params[n]).detach().to(device).clone() for n in expected}
        model._set_learned(config, sizes, weights, n_forward)
        model.history_ = [dict(r) for r in history]
        model.best_epoch_ = int(best_epoch)
        model.best_metric_ = float(best_metric)
        model.status_ = str(status)
        return model

    def _set_learned(self, config, sizes: Sizes, params, n_forward: int) -> None:
        self.config_ = config
        self.params_ = {n: p.detach() for n, p in params.items()}
        self.n_neurons_in_ = sizes.n_neurons_in
        self.n_neurons_out_ = sizes.n_neurons_out
        self.n_ext_ = sizes.n_ext
        self.n_forward_ = int(n_forward)

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise RuntimeError("this LFADS model is not fitted yet; call fit(data) first")

    # ------------------------------------------------------------ inference
    def predict(
        self,
        data: SpikeData,
        n_samples: int | None = None,
        posterior_mean: bool = False,
        seed: int = 0,
    ) -> dict[str, np.ndarray]:
        """All per-trial outputs.

        Parameters
        ----------
        data : SpikeData
            Its ``spikes`` are the encoder input (all trials are predicted).
        n_samples : int, optional
            Posterior samples averaged (default ``config_.n_samples``).
        posterior_mean : bool
            Deterministic pass with posterior means instead of sampling.
        seed : int
            Seed of the posterior samples.

        Returns
        -------
        dict of arrays: 'rates' (n_trials, n_timesteps + n_forward, n_neurons + n_heldout) in
        expected spikes per bin, 'factors' (n_trials, T_out, fac_dim), 'inputs'
        (n_trials, n_timesteps, co_dim; when co_dim > 0), 'ic_mean', 'ic_std'
        (n_trials, ic_dim).
        """
        self._check_fitted()
        if not isinstance(data, SpikeData):
            raise DataError(f"data: expected a SpikeData, got {type(data).__name__}")
        if data.n_neurons != self.n_neurons_in_:
            raise DataError(
                f"spikes: {data.n_neurons} held-in neurons, but the model was fitted on "
                f"{self.n_neurons_in_}; pass data with the same neurons"
            )
        n_ext = 0 if data.ext_input is None else data.ext_input.shape[2]
        if n_ext != self.n_ext_:
            raise DataError(
                f"ext_input: {n_ext} dims, but the model was fitted with "
                f"{self.n_ext_}; pass the same external inputs"
            )
        out = infer(
            self.params_,
            self.config_,
            torch.as_tensor(data.spikes),
            data.n_timesteps + self.n_forward_,
            n_samples=n_samples,
            ext_input=None if data.ext_input is None else torch.as_tensor(data.ext_input),
            posterior_mean=posterior_mean,
            seed=seed,
        )
        return {name: value[0] for name, value in out.items()}

    def predict_rates(self, data: SpikeData, **kwargs: Any) -> np.ndarray:
        """Rates (n_trials, n_timesteps + n_forward, n_neurons + n_heldout), spikes per bin."""
        return self.predict(data, **kwargs)["rates"]

    def transform(self, data: SpikeData, **kwargs: Any) -> np.ndarray:
        """Latent factors (n_trials, n_timesteps + n_forward, fac_dim)."""
        return self.predict(data, **kwargs)["factors"]

    def score(self, data: SpikeData) -> float:
        """Higher is better.

        With held-out neurons observed in the valid trials: co-bps of those neurons on the
        valid trials. Otherwise: minus the mean Poisson NLL of the held-in spikes of the
        valid trials (posterior-mean pass).
        """
        self._check_fitted()
        valid = data.valid_idx
        heldout = None if data.heldout is None else data.heldout[valid]
        if heldout is not None and not np.isnan(heldout).all():
            from lfadskit.metrics import co_bps

            rates = self.predict_rates(data)[valid, : data.n_timesteps, data.n_neurons :]
            return co_bps(heldout, rates)
        out = self.predict(data, posterior_mean=True)
        log_rates = torch.log(
            torch.as_tensor(out["rates"][valid, : data.n_timesteps, : data.n_neurons])
        )
        spikes = torch.as_tensor(data.spikes[valid])
        mask = torch.ones(spikes.shape, dtype=torch.bool)
        return -float(masked_poisson_nll(log_rates[None], spikes, mask[None])[0])

    # ----------------------------------------------------------- save/load
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``lfads.json`` (config, sizes, fit summary, history) and ``weights.pt``."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": self.config_.to_dict(),
            "sizes": Sizes(self.n_neurons_in_, self.n_neurons_out_, self.n_ext_).to_dict(),
            "n_forward": self.n_forward_,
            "best_epoch": self.best_epoch_,
            "best_metric": self.best_metric_ if math.isfinite(self.best_metric_) else None,
            "status": self.status_,
            "history": self.history_,
        }
        # weights first, then the config that points at them; each written atomically
        write_torch(directory / WEIGHTS_FILE, {n: p.cpu() for n, p in self.params_.items()})
        with atomic_path(directory / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=1, default=float))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu") -> LFADS:
        """Load a model written by ``save`` (weights loaded with ``weights_only=True``)."""
        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text())
        config = LFADSConfig.from_dict(meta["config"])
        params = torch.load(directory / WEIGHTS_FILE, map_location=device, weights_only=True)
        model = cls(config, device=device)
        model._set_learned(config, Sizes(**meta["sizes"]), params, meta["n_forward"])
        model.history_ = meta["history"]
        model.best_epoch_ = meta["best_epoch"]
        best = meta["best_metric"]
        model.best_metric_ = math.inf if best is None else best
        model.status_ = meta["status"]
        return model
