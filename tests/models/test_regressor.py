"""The latent → θ regressor and the target standardisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcinv.errors import CheckpointError, FcinvError
from fcinv.models import Regressor, RegressorConfig, Standardizer


def test_shapes():
    reg = Regressor(RegressorConfig(latent_dim=6, n_out=4, hidden=(8, 8)))
    assert reg(torch.rand(5, 6)).shape == (5, 4)
    assert reg(torch.rand(5, 7, 6)).shape == (5, 7, 4)  # K latent samples per spectrum
    with pytest.raises(FcinvError, match="latent vectors of size 6; got shape \\(5, 3\\)"):
        reg(torch.rand(5, 3))


def test_config_validation():
    with pytest.raises(FcinvError, match="activation='swish' is unknown"):
        RegressorConfig(latent_dim=2, n_out=1, activation="swish")


def test_standardizer_round_trip():
    theta = np.random.default_rng(0).normal([1.0, -2.0, 0.1], [0.3, 0.01, 2.0], (500, 3))
    st = Standardizer.fit(theta)
    y = st.transform(theta)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(st.inverse(y), theta, rtol=1e-5, atol=1e-6)
    assert Standardizer.from_dict(st.to_dict()) == st
    with pytest.raises(CheckpointError, match="target scaling in the checkpoint is malformed"):
        Standardizer.from_dict({"mean": [0.0]})
