"""Coordinated dropout and sample validation: expectation, gradient routing, fixed SV mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lfadskit.data import SpikeData
from lfadskit.lfads import (
    LFADSConfig,
    apply_sample_validation,
    coordinated_dropout,
    sample_validation_mask,
)
from lfadskit.lfads.masks import training_masks
from lfadskit.lfads.network import draw_noise, forward
from lfadskit.lfads.objective import population_loss
from lfadskit.lfads.train import PopulationTrainer

TINY = dict(ic_enc_dim=6, ci_enc_dim=6, ic_dim=4, con_dim=6, co_dim=2, gen_dim=8, fac_dim=3)


def tiny_data(n_trials=12, n_time=10, n_in=7, n_heldout=3, n_forward=2, seed=0):
    rng = np.random.default_rng(seed)
    heldout = rng.poisson(1.0, (n_trials, n_time, n_heldout)).astype(float)
    forward_ = rng.poisson(1.0, (n_trials, n_forward, n_in + n_heldout)).astype(float)
    valid = np.arange(n_trials - 4, n_trials)
    heldout[valid] = np.nan
    forward_[valid] = np.nan
    return SpikeData(
        spikes=rng.poisson(1.5, (n_trials, n_time, n_in)),
        heldout=heldout,
        forward=forward_,
        train_idx=np.arange(n_trials - 4),
        valid_idx=valid,
    )


# ------------------------------------------------------------------- CD
@pytest.mark.parametrize("cd_rate", [0.1, 0.5, 0.7])
def test_cd_keeps_the_expectation(cd_rate):
    counts = torch.full((400_000,), 3.0)
    masked, _ = coordinated_dropout(counts, cd_rate, torch.Generator().manual_seed(1))
    # masked = 3 / (1 - p) w.p. 1 - p: standard error of the mean from the Bernoulli variance
    se = 3.0 * math.sqrt(cd_rate / (1 - cd_rate) / counts.numel())
    assert abs(masked.mean().item() - 3.0) < 4 * se
    kept = masked[masked > 0]
    assert torch.allclose(kept, torch.tensor(3.0 / (1 - cd_rate)))


def test_cd_grad_mask_marks_exactly_the_dropped_elements():
    counts = torch.arange(1, 61, dtype=torch.float32).reshape(3, 4, 5)  # all positive
    masked, grad_mask = coordinated_dropout(counts, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(grad_mask, masked == 0)
    assert 0 < grad_mask.sum() < grad_mask.numel()


def test_cd_is_a_pure_function_of_its_generator():
    counts = torch.ones(4, 5, 6)
    a = coordinated_dropout(counts, 0.3, torch.Generator().manual_seed(7))
    b = coordinated_dropout(counts, 0.3, torch.Generator().manual_seed(7))
    c = coordinated_dropout(counts, 0.3, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_cd_rate_zero_is_identity_with_full_gradient():
    counts = torch.ones(2, 3, 4)
    masked, grad_mask = coordinated_dropout(counts, 0.0, None)
    assert torch.equal(masked, counts) and bool(grad_mask.all())


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_cd_rejects_bad_rates(bad):
    with pytest.raises(ValueError, match="cd_rate"):
        coordinated_dropout(torch.ones(2, 2, 2), bad, None)


# ------------------------------------------------------------------- SV
@pytest.mark.parametrize("sv_rate", [0.05, 0.2, 0.5])
def test_sv_mask_holds_out_the_asked_fraction(sv_rate):
    shape = (50, 40, 30)
    mask = sample_validation_mask(shape, sv_rate, seed=3)
    n = math.prod(shape)
    assert mask.shape == shape and mask.dtype == bool
    assert abs(mask.mean() - sv_rate) < 4 * math.sqrt(sv_rate * (1 - sv_rate) / n)


def test_sv_mask_is_fixed_by_its_seed():
    a = sample_validation_mask((5, 6, 7), 0.3, seed=11)
    assert np.array_equal(a, sample_validation_mask((5, 6, 7), 0.3, seed=11))
    assert not np.array_equal(a, sample_validation_mask((5, 6, 7), 0.3, seed=12))
    assert not sample_validation_mask((5, 6, 7), 0.0, seed=11).any()


def test_apply_sample_validation_zeroes_and_rescales():
    counts = torch.full((3, 4, 5), 2.0)
    held = torch.as_tensor(sample_validation_mask(counts.shape, 0.25, seed=0))
    out = apply_sample_validation(counts, held, 0.25)
    assert torch.equal(out[held], torch.zeros(int(held.sum())))
    assert torch.allclose(out[~held], torch.tensor(2.0 / 0.75))


def test_sv_mask_is_the_same_in_every_epoch_and_for_every_member():
    data = tiny_data()
    cfg = LFADSConfig(
        **TINY,
        sv_rate=0.3,
        sv_seed=5,
        max_epochs=3,
        kl_increase_epoch=0,
        l2_increase_epoch=0,
        batch_size=4,
    )
    trainer = PopulationTrainer(data, cfg, {"cd_rate": [0.0, 0.5]}, seeds=[0, 1])
    expected = sample_validation_mask(data.spikes.shape, 0.3, seed=5)
    seen_inputs = []
    original = trainer._train_step

    def spy(idx, w_kl, w_l2):
        masked, _ = training_masks(
            trainer.inputs[idx],
            trainer.sv_mask[idx],
            [0.0, 0.5],
            [torch.Generator().manual_seed(0)] * 2,
            trainer.recon.shape[1:],
        )
        seen_inputs.append((idx.clone(), masked))
        return original(idx, w_kl, w_l2)

    trainer._train_step = spy
    trainer.run()
    assert np.array_equal(trainer.sv_mask.numpy(), expected)
    held = torch.as_tensor(expected)
    for idx, masked in seen_inputs:
        # both members read zeros at every SV-held-out element of every batch of every epoch
        assert bool((masked[:, held[idx]] == 0).all())


# ------------------------------------------------------- gradient routing
def _loss_and_log_rate_grad(sv_rate, cd_rates, seed=0):
    data = tiny_data(seed=seed)
    cfg = LFADSConfig(**TINY, sv_rate=sv_rate, max_epochs=1)
    k = len(cd_rates)
    trainer = PopulationTrainer(data, cfg, {"cd_rate": cd_rates}, seeds=list(range(k)))
    idx = trainer.train_idx
    gens = [torch.Generator().manual_seed(100 + i) for i in range(k)]
    masked, grad_mask = training_masks(
        trainer.inputs[idx], trainer.sv_mask[idx], cd_rates, gens, trainer.recon.shape[1:]
    )
    noise = draw_noise(
        gens,
        cfg,
        len(idx),
        data.n_timesteps,
        data.n_timesteps_out,
        data.n_neurons,
        trainer.hparams["dropout"],
    )
    out = forward(trainer.params, masked, cfg, data.n_timesteps_out, noise)
    out["log_rates"].retain_grad()
    parts = population_loss(
        out, trainer.recon[idx], grad_mask, trainer.params, trainer.hparams, cfg, 1.0, 1.0
    )
    parts["loss"].sum().backward()
    return data, trainer, idx, masked, grad_mask, out["log_rates"].grad


def test_gradient_flows_only_from_elements_the_encoder_did_not_see():
    data, trainer, idx, masked, grad_mask, grad = _loss_and_log_rate_grad(0.2, [0.3, 0.6])
    t, n_in = data.n_timesteps, data.n_neurons
    window_grad = grad[:, :, :t, :n_in]
    sv_held = trainer.sv_mask[idx].expand_as(masked)
    receives = grad_mask[:, :, :t, :n_in]
    # exactly zero wherever the encoder read a count (non-zero input), at every element not
    # chosen for gradient, and at every SV-held-out element
    assert bool((window_grad[masked != 0] == 0).all())
    assert bool((window_grad[~receives] == 0).all())
    assert bool((window_grad[sv_held] == 0).all())
    # the elements chosen for gradient were all zeroed at the input (dropped by CD)
    assert bool((masked[receives] == 0).all())
    assert bool((receives & sv_held).sum() == 0)
    # generically non-zero where the element was dropped by CD (and not held out by SV)
    assert bool((window_grad[grad_mask[:, :, :t, :n_in]] != 0).all())
    # held-out neurons and forward bins always send gradient where observed
    observed = ~torch.isnan(trainer.recon[idx])
    assert bool((grad[:, :, :t, n_in:][:, observed[:, :t, n_in:]] != 0).all())
    assert bool((grad[:, :, t:][:, observed[:, t:]] != 0).all())
    assert bool((grad[:, ~observed] == 0).all())


def test_without_cd_every_observed_non_sv_element_sends_gradient():
    data, trainer, idx, masked, grad_mask, grad = _loss_and_log_rate_grad(0.2, [0.0])
    t, n_in = data.n_timesteps, data.n_neurons
    sv_held = trainer.sv_mask[idx]
    assert bool((grad[0, :, :t, :n_in][~sv_held] != 0).all())
    assert bool((grad[0, :, :t, :n_in][sv_held] == 0).all())
