"""ser.data.smile: openSMILE feature sets through audEERING's opensmile package."""

from __future__ import annotations

import numpy as np
import opensmile
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ser.config import CONFIG_DIR
from ser.data.audio import load_audio
from ser.data.smile import OpenSmile
from ser.errors import ConfigError


def direct(path, feature_set: str, level: str) -> np.ndarray:
    """What opensmile itself gives for ``path`` resampled to 16 kHz as ser reads it."""
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet[feature_set], feature_level=opensmile.FeatureLevel[level]
    )
    return smile.process_signal(load_audio(path, sample_rate=16000).numpy(), 16000).to_numpy()


@pytest.mark.parametrize(
    ("config", "feature_set", "level", "dims"),
    [
        ("egemaps", "eGeMAPSv02", "Functionals", 88),
        ("compare", "ComParE_2016", "Functionals", 6373),
        ("egemaps_lld", "eGeMAPSv02", "LowLevelDescriptors", 25),
    ],
)
def test_each_feature_config_gives_opensmile_s_features(
    emodb_root, config, feature_set, level, dims
):
    smile = instantiate(OmegaConf.load(CONFIG_DIR / "features" / f"{config}.yaml"))
    assert isinstance(smile, OpenSmile) and (smile.channels, smile.dims) == (1, dims)
    path = emodb_root / "wav" / "03a01Fa.wav"
    features = smile(load_audio(path, sample_rate=16000))
    expected = direct(path, feature_set, level)
    assert features.shape == (1, *expected.shape) and features.dtype == torch.float32
    np.testing.assert_allclose(features[0].numpy(), expected, rtol=1e-5, atol=1e-5)
    if level == "Functionals":
        assert smile.frame_rate is None and expected.shape[0] == 1
        assert smile.segment_frames(3.0) == 1  # one segment per utterance
    else:  # one frame every 10 ms over the 2 s recording
        assert smile.frame_rate == 100.0 and abs(expected.shape[0] - 200) <= 6
        assert smile.segment_frames(3.0) == 300


def test_the_cache_key_tells_feature_sets_apart():
    egemaps, compare = OpenSmile(), OpenSmile(feature_set="ComParE_2016")
    assert egemaps.cache_key() != compare.cache_key()
    assert egemaps.cache_key()["frontend"] == "opensmile"
    assert OpenSmile(**egemaps.config()).cache_key() == egemaps.cache_key()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_set": "eGeMAPSv9"}, "features.feature_set='eGeMAPSv9': choose one of"),
        ({"feature_level": "frames"}, "features.feature_level='frames': choose one of"),
    ],
)
def test_an_unknown_feature_set_or_level_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        OpenSmile(**kwargs)
