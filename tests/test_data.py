"""SpikeData validation: every bad input raises a DataError naming the field."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lfadskit.data import DataError, SpikeData, make_split


def counts(n_trials=8, n_timesteps=6, n_neurons=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, size=(n_trials, n_timesteps, n_neurons)).astype(np.float32)
    x[:, 0, :] = 1.0  # every neuron fires in every trial: no silent-neuron warning
    return x


def test_minimal_container_sizes_and_default_split():
    data = SpikeData(spikes=counts())
    assert (data.n_trials, data.n_timesteps, data.n_neurons) == (8, 6, 4)
    assert data.n_heldout == 0 and data.n_forward == 0
    assert data.recon.shape == data.recon_shape == (8, 6, 4)
    assert np.array_equal(data.recon, data.spikes)
    # the default split is make_split(n_trials, 0.2, seed=0): disjoint and covering all trials
    train, valid = make_split(8, 0.2, seed=0)
    assert np.array_equal(data.train_idx, train) and np.array_equal(data.valid_idx, valid)
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(8))
    assert data.spikes.dtype == np.float32


def test_recon_layout_with_heldout_and_forward():
    spikes = counts()
    heldout = counts(n_neurons=3, seed=1)
    forward = counts(n_timesteps=2, n_neurons=7, seed=2)
    forward[0] = np.nan  # trial 0 has no forward data
    data = SpikeData(spikes=spikes, heldout=heldout, forward=forward)
    recon = data.recon
    assert recon.shape == (8, 8, 7) == data.recon_shape
    assert np.array_equal(recon[:, :6, :4], spikes)
    assert np.array_equal(recon[:, :6, 4:], heldout)
    assert np.array_equal(recon[1:, 6:, :], forward[1:])
    assert np.isnan(recon[0, 6:]).all()


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            lambda x: x.__setitem__((1, 2, 3), -1.0),
            r"spikes: negative count -1\.0 at index \(1, 2, 3\)",
        ),
        (
            lambda x: x.__setitem__((0, 4, 1), 0.5),
            r"spikes: non-integer count 0\.5 at index \(0, 4, 1\)",
        ),
        (lambda x: x.__setitem__((2, 0, 0), np.nan), r"spikes: NaN at index \(2, 0, 0\)"),
        (lambda x: x.__setitem__((2, 0, 0), np.inf), r"spikes: infinite value"),
    ],
)
def test_bad_counts_name_the_first_bad_index(change, pattern):
    x = counts()
    change(x)
    with pytest.raises(DataError, match=pattern):
        SpikeData(spikes=x)


def test_nan_allowed_in_heldout_but_negative_is_not():
    heldout = counts(n_neurons=2)
    heldout[3] = np.nan
    SpikeData(spikes=counts(), heldout=heldout)  # unobserved trial: fine
    heldout[4, 1, 1] = -2
    with pytest.raises(DataError, match=r"heldout: negative count -2\.0 at index \(4, 1, 1\)"):
        SpikeData(spikes=counts(), heldout=heldout)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"heldout": counts(n_timesteps=5)}, r"heldout: shape \(8, 5, 4\) does not match"),
        ({"heldout": counts(n_trials=7)}, r"heldout: shape \(7, 6, 4\) does not match"),
        ({"forward": counts(n_timesteps=2, n_neurons=3)}, r"forward: shape \(8, 2, 3\)"),
        ({"behavior": np.zeros((8, 5, 2))}, r"behavior: shape \(8, 5, 2\) does not match"),
        ({"truth": np.ones((8, 6, 5))}, r"truth: shape \(8, 6, 5\) does not match recon"),
        ({"truth": -np.ones((8, 6, 4))}, r"truth: negative rate"),
        ({"ext_input": np.zeros((8, 7, 1))}, r"ext_input: shape \(8, 7, 1\) does not match"),
        ({"conditions": np.zeros(7, dtype=int)}, r"conditions: expected 8 integer labels"),
        ({"conditions": np.zeros(8)}, r"conditions: expected 8 integer labels, got dtype float"),
        ({"bin_size": 0.0}, r"bin_size: must be a positive number"),
    ],
)
def test_mismatched_fields(kwargs, pattern):
    with pytest.raises(DataError, match=pattern):
        SpikeData(spikes=counts(), **kwargs)


def test_zero_sized_axes_and_wrong_dims():
    with pytest.raises(DataError, match=r"spikes: has zero time bins"):
        SpikeData(spikes=np.zeros((4, 0, 3)))
    with pytest.raises(DataError, match=r"spikes: has zero neurons"):
        SpikeData(spikes=np.zeros((4, 3, 0)))
    with pytest.raises(DataError, match=r"spikes: has zero trials"):
        SpikeData(spikes=np.zeros((0, 3, 3)))
    with pytest.raises(DataError, match=r"spikes: expected 3 dimensions"):
        SpikeData(spikes=np.zeros((4, 3)))


def test_non_numeric_dtypes():
    with pytest.raises(DataError, match=r"spikes: expected a numeric array, got dtype <U1"):
        SpikeData(spikes=np.full((4, 3, 2), "a"))
    with pytest.raises(DataError, match=r"spikes: expected a numeric array, got dtype object"):
        SpikeData(spikes=np.empty((4, 3, 2), dtype=object))


def test_split_validation():
    x = counts()
    with pytest.raises(
        DataError, match=r"valid_idx: has 1 trial\(s\); each split needs at least 2"
    ):
        SpikeData(spikes=x, train_idx=[0, 1, 2], valid_idx=[3])
    with pytest.raises(DataError, match=r"train_idx and valid_idx: trial 2 is in both"):
        SpikeData(spikes=x, train_idx=[0, 1, 2], valid_idx=[2, 3])
    with pytest.raises(DataError, match=r"train_idx: trial index 9 out of range for 8 trials"):
        SpikeData(spikes=x, train_idx=[0, 9], valid_idx=[2, 3])
    with pytest.raises(DataError, match=r"give both or neither"):
        SpikeData(spikes=x, train_idx=[0, 1])
    with pytest.raises(DataError, match=r"too few trials to split: 3 trials"):
        SpikeData(spikes=counts(n_trials=3))


def test_silent_neuron_warns_not_errors():
    x = counts()
    x[:, :, 2] = 0
    with pytest.warns(UserWarning, match=r"1 neuron\(s\) never fire.*\[2\]"):
        data = SpikeData(spikes=x)
    assert data.n_neurons == 4


def test_no_warning_for_healthy_data_and_integer_input_dtypes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = SpikeData(spikes=counts().astype(np.int64))
    assert data.spikes.dtype == np.float32


def test_replace_revalidates_and_with_split_is_seeded():
    data = SpikeData(spikes=counts(n_trials=20))
    a, b = data.with_split(0.25, seed=3), data.with_split(0.25, seed=3)
    assert np.array_equal(a.valid_idx, b.valid_idx) and a.valid_idx.size == 5
    with pytest.raises(DataError, match="spikes: negative"):
        data.replace(spikes=-np.ones((20, 6, 4)))
    assert "20 trials (16 train, 4 valid)" in repr(data)
    assert np.array_equal(data.index("all"), np.arange(20))
    with pytest.raises(ValueError, match="split: expected"):
        data.index("test")
