"""ser.data.ssl: frozen encoders from tiny WavLM folders built from their configs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from tiny_encoders import save_tiny_wavlm
from transformers import AutoFeatureExtractor, AutoModel

from ser.data.corpora import Manifest
from ser.data.source import FeatureSource
from ser.data.ssl import SSLEncoder
from ser.errors import ConfigError


def reference_states(folder, wave: torch.Tensor) -> tuple:
    """Every hidden state of ``wave`` the Hugging Face way (its extractor, then the model)."""
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    inputs = extractor(wave.numpy(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad(), warnings.catch_warnings():  # transformers' WavLM, as in ser.data.ssl
        warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
        return model(**inputs, output_hidden_states=True).hidden_states


def test_the_chosen_layer_is_cached_with_the_extractor_s_normalisation(tiny_encoder):
    wave = 0.1 * torch.randn(16000) + 0.05  # an offset the normalisation removes
    states = reference_states(tiny_encoder, wave)
    assert len(states) == 3  # the transformer's input and 2 layers
    for layer in (0, 1, 2, -1):
        features = SSLEncoder(model=str(tiny_encoder), layer=layer)(wave)
        torch.testing.assert_close(features, states[layer], atol=1e-4, rtol=1e-4)
    mean = SSLEncoder(model=str(tiny_encoder), layers=[1, 2])(wave)
    torch.testing.assert_close(mean, (states[1] + states[2]) / 2, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(mean, states[2], atol=1e-3)


def test_frame_counts_follow_the_encoder_s_stride(tiny_encoder):
    encoder = SSLEncoder(model=str(tiny_encoder))
    assert encoder.frame_rate == 50.0  # 16 kHz / a total conv stride of 320
    assert (encoder.channels, encoder.dims) == (1, 32)
    assert encoder.min_samples == 400
    assert encoder.segment_frames(3.0) == 150
    for samples in (400, 8000, 16000, 37920):
        # a 400-sample receptive field, then one frame every 320 samples
        assert encoder(torch.randn(samples)).shape == (1, (samples - 400) // 320 + 1, 32)


@pytest.mark.parametrize("masked", [True, False])
def test_a_padded_batch_gives_each_utterance_its_own_features(tmp_path, masked):
    """Utterances of different lengths encoded together equal each encoded alone: padding is
    masked (layer-norm encoders) or never made (group-norm encoders go one by one)."""
    folder = save_tiny_wavlm(tmp_path / "wavlm", masked=masked)
    encoder = SSLEncoder(model=str(folder), layer=-1)
    waves = [torch.randn(n) for n in (8000, 24000, 16320, 12000)]
    together = encoder.extract_many(waves)
    assert encoder.batch_utterances == (12 if masked else 1)
    for wave, features in zip(waves, together, strict=True):
        alone = encoder(wave)
        assert features.shape == alone.shape == (1, (wave.numel() - 400) // 320 + 1, 32)
        torch.testing.assert_close(features, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 3}, "features.layer=3: the encoder has hidden states 0..2 (2 layers"),
        ({"layer": -4}, "features.layer=-4: the encoder has hidden states 0..2"),
        ({"layers": [1, 5]}, "features.layers=[1, 5]: the encoder has hidden states 0..2"),
        ({"layers": [2, 1]}, "features.layers=[2, 1]"),
        ({"layer": None}, "features.layer=null: give a layer index"),
    ],
)
def test_a_layer_the_encoder_does_not_have_is_refused(tiny_encoder, kwargs, message):
    with pytest.raises(ConfigError) as err:
        SSLEncoder(model=str(tiny_encoder), **kwargs)
    assert message in str(err.value)


def test_a_hub_name_without_a_copy_names_it_and_how_to_fetch_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError) as err:
        SSLEncoder(model="microsoft/wavlm-base-plus")
    text = str(err.value)
    assert "features.model=microsoft/wavlm-base-plus: no usable copy in the Hugging Face" in text
    assert "HF_HUB_OFFLINE is set" in text and "hf download microsoft/wavlm-base-plus" in text


def test_encoder_features_are_cached_per_layer(tiny_encoder, emodb_manifest, tmp_path):
    corpus = Manifest(manifest=emodb_manifest)
    utterances = corpus.utterances[:6]
    last = FeatureSource(SSLEncoder(model=str(tiny_encoder)), cache_dir=tmp_path, progress=False)
    report = last.fill(corpus, utterances)
    assert (report.computed, report.cached) == (6, 0)
    assert last.fill(corpus, utterances).cached == 6
    first = FeatureSource(
        SSLEncoder(model=str(tiny_encoder), layer=1), cache_dir=tmp_path, progress=False
    )
    assert first.cache(corpus).directory != last.cache(corpus).directory
    assert first.fill(corpus, utterances).computed == 6
    cached = last.load(corpus, utterances)
    for utterance, features in zip(utterances, cached, strict=True):
        np.testing.assert_allclose(features, last.extract(utterance), atol=1e-4, rtol=1e-4)
