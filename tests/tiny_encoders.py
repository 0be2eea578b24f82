"""Tiny self-supervised encoders built from their configs (no weights can be downloaded)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_wavlm(folder: Path, *, masked: bool = True, seed: int = 0) -> Path:
    """A randomly initialised 2-layer WavLM (hidden size 32) and its feature extractor,
    saved as a Hugging Face model folder; no weights are downloaded.

    ``masked``: layer-normalised convolutions and an extractor that returns attention masks
    (WavLM-large style, padded batches); else group norm without masks (wav2vec 2.0 base
    style, one utterance at a time).
    """
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    torch.manual_seed(seed)
    config = WavLMConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, feat_extract_norm="layer" if masked else "group",
        num_buckets=16, max_bucket_distance=50, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    WavLMModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
        return_attention_mask=masked,
    ).save_pretrained(folder)  # fmt: skip
    return folder
