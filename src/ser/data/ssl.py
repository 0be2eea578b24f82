"""Frozen self-supervised speech encoders (WavLM, HuBERT, wav2vec 2.0, any Hugging Face
``AutoModel`` audio encoder) as a front-end: one hidden layer, or the mean of a range of
layers, per frame.

The encoder's own feature extractor sets the sample rate and the waveform normalisation.
Utterances are encoded in padded batches with an attention mask when the extractor asks for
one (``return_attention_mask``; models with layer-normalised convolutions); otherwise one at a
time, since such models (group-normalised convolutions, e.g. wav2vec 2.0 base) see the
padding. Each utterance keeps exactly the frames its own length gives
(``_get_feat_extract_output_lengths``: 50 per second at 16 kHz for the common encoders).

Weights come from the Hugging Face cache or a local folder. ``HF_HUB_OFFLINE=1`` keeps
everything local; without a copy the error names the model and how to fetch it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from ser.data.frontend import FrontEnd
from ser.errors import ConfigError


class SSLEncoder(FrontEnd):
    """Hidden states of a frozen encoder: ``(1, frames, hidden_size)`` per recording.

    Args:
        model: a Hugging Face hub name (``microsoft/wavlm-base-plus``) or a local folder
            holding the model and its ``preprocessor_config.json``.
        layer: the hidden state to keep: 0 is the input of the first transformer layer,
            ``num_hidden_layers`` the last layer's output; negative counts from the end.
        layers: ``[first, last]`` (inclusive) to average instead of one ``layer``.
        batch_seconds: audio per batch while encoding (padded batches need an attention
            mask; see the module docstring).
        device: where the encoder runs: ``auto`` (a GPU when there is one), ``cpu``,
            ``cuda``. Not part of the cache key: the features are the same.

    Example:
        >>> encoder = SSLEncoder(model="microsoft/wavlm-base-plus", layer=6)  # doctest: +SKIP
        >>> encoder(torch.randn(32000)).shape  # doctest: +SKIP
        torch.Size([1, 99, 768])
    """

    kind = "ssl"
    parallel_fill = False
    channels = 1

    def __init__(
        self,
        *,
        model: str,
        layer: int | None = -1,
        layers: Sequence[int] | None = None,
        batch_seconds: float = 60.0,
        device: str = "auto",
    ) -> None:
        super().__init__()
        self.model_name = str(model)
        encoder, extractor = _load(self.model_name)
        if not hasattr(encoder, "_get_feat_extract_output_lengths"):
            raise ConfigError(
                f"features.model={model}: {type(encoder).__name__} is not a wav2vec 2.0-style "
                "speech encoder (WavLM, HuBERT, wav2vec 2.0, data2vec-audio, UniSpeech)"
            )
        depth = encoder.config.num_hidden_layers
        self.layer, self.layers = _check_layers(layer, layers, depth)
        self.encoder = encoder.eval().requires_grad_(False)
        self.sample_rate = int(extractor.sampling_rate)
        self.normalize = bool(getattr(extractor, "do_normalize", False))
        self.masked = bool(getattr(extractor, "return_attention_mask", False))
        self.dims = int(encoder.config.hidden_size)
        stride = math.prod(getattr(encoder.config, "conv_stride", (1,)))
        self.frame_rate = self.sample_rate / stride
        self.min_samples = int(_receptive_field(encoder.config))
        # utterances handed over per call while filling the cache: about batch_seconds of
        # speech at a typical 5 s each; the batches themselves are cut by length below
        self.batch_utterances = max(1, round(batch_seconds / 5)) if self.masked else 1
        self.batch_seconds = batch_seconds
        self.device_option = device
        self.revision = getattr(encoder.config, "_commit_hash", None)

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"model": self.model_name}
        if self.layers is not None:
            config["layers"] = list(self.layers)
            config["layer"] = None
        else:
            config["layer"] = self.layer
        return config

    def cache_key(self) -> dict[str, Any]:
        """The config, the hub revision the weights came from, and the waveform handling."""
        return super().cache_key() | {
            "revision": self.revision,
            "sample_rate": self.sample_rate,
            "normalize": self.normalize,
        }

    def describe(self) -> str:
        if self.layers is not None:
            which = f"mean of layers {self.layers[0]}-{self.layers[1]}"
        else:
            which = f"layer {self.layer}"
        return f"{self.model_name} {which} ({self.dims}-d, {self.frame_rate:g} frames/s)"

    def _device(self) -> torch.device:
        if self.device_option == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device_option)

    def frames_for(self, samples: int) -> int:
        """Frames the encoder gives for ``samples`` samples."""
        return int(self.encoder._get_feat_extract_output_lengths(torch.tensor(samples)))

    @torch.inference_mode()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.extract_many([waveform])[0]

    @torch.inference_mode()
    def extract_many(self, waves: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Encode ``waves`` in padded batches (with an attention mask) or one by one."""
        device = self._device()
        self.encoder.to(device)
        out: list[torch.Tensor] = [torch.empty(0)] * len(waves)
        order = sorted(range(len(waves)), key=lambda i: waves[i].numel())
        budget = self.batch_seconds * self.sample_rate
        batch: list[int] = []
        for index in order:
            longest = waves[index].numel()  # sorted: the longest so far
            if batch and (not self.masked or longest * (len(batch) + 1) > budget):
                self._encode(waves, batch, out, device)
                batch = []
            batch.append(index)
        if batch:
            self._encode(waves, batch, out, device)
        return out

    def _encode(
        self,
        waves: Sequence[torch.Tensor],
        batch: list[int],
        out: list[torch.Tensor],
        device: torch.device,
    ) -> None:
        lengths = torch.tensor([waves[i].numel() for i in batch])
        x = torch.zeros(len(batch), int(lengths.max()))
        for row, i in enumerate(batch):
            wave = waves[i].float()
            if self.normalize:  # the extractor's zero-mean, unit-variance normalisation
                wave = (wave - wave.mean()) / (wave.var(correction=0) + 1e-7).sqrt()
            x[row, : wave.numel()] = wave
        mask = torch.arange(x.shape[1])[None] < lengths[:, None]
        kwargs = {"attention_mask": mask.long().to(device)} if self.masked else {}
        with warnings.catch_warnings():  # transformers' WavLM, not ours to fix
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            output = self.encoder(x.to(device), output_hidden_states=True, **kwargs)
        hidden = output.hidden_states
        if self.layers is not None:
            first, last = self.layers
            states = torch.stack(hidden[first : last + 1]).mean(dim=0)
        else:
            states = hidden[self.layer]
        frames = self.encoder._get_feat_extract_output_lengths(lengths)
        for row, i in enumerate(batch):
            out[i] = states[row, : int(frames[row])].float().cpu()[None].contiguous()


def _receptive_field(config: Any) -> int:
    """Samples the convolutional feature encoder needs for one frame."""
    field = 1
    for kernel, stride in zip(
        reversed(getattr(config, "conv_kernel", (1,))),
        reversed(getattr(config, "conv_stride", (1,))),
        strict=True,
    ):
        field = (field - 1) * stride + kernel
    return field


def _check_layers(
    layer: int | None, layers: Sequence[int] | None, depth: int
) -> tuple[int | None, tuple[int, int] | None]:
    """``(layer, layers)`` with a negative layer counted from the end; an index past the
    encoder's ``depth`` transformer layers is a :class:`ConfigError`."""
    states = depth + 1  # the transformer's input and each layer's output
    if layers is not None:
        if len(layers) != 2:
            raise ConfigError(f"features.layers={list(layers)}: give [first, last] (inclusive)")
        first, last = (int(v) if v >= 0 else states + int(v) for v in layers)
        if not 0 <= first <= last < states:
            raise ConfigError(
                f"features.layers={list(layers)}: the encoder has hidden states 0..{depth} "
                f"({depth} layers); give 0 <= first <= last <= {depth}"
            )
        return None, (first, last)
    if layer is None:
        raise ConfigError("features.layer=null: give a layer index, or features.layers=[a, b]")
    index = int(layer) if layer >= 0 else states + int(layer)
    if not 0 <= index < states:
        raise ConfigError(
            f"features.layer={layer}: the encoder has hidden states 0..{depth} ({depth} "
            f"layers, 0 being the transformer's input); give a layer from {-states} to {depth}"
        )
    return index, None


def _load(name: str) -> tuple[Any, Any]:
    """The encoder and its feature extractor, from a local folder or the Hugging Face
    cache (the network only when ``HF_HUB_OFFLINE`` is unset)."""
    from transformers import AutoFeatureExtractor, AutoModel

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    attempts = [True] if offline or os.path.isdir(name) else [True, False]
    error: Exception | None = None
    for local_only in attempts:
        try:
            model = AutoModel.from_pretrained(name, local_files_only=local_only)
            extractor = AutoFeatureExtractor.from_pretrained(name, local_files_only=local_only)
        except (OSError, ValueError) as err:
            error = err
            continue
        if not hasattr(extractor, "sampling_rate"):
            raise ConfigError(
                f"features.model={name}: its preprocessor has no sampling_rate; it is not an "
                "audio encoder"
            )
        return model, extractor
    where = "the local folder" if os.path.isdir(name) else "the Hugging Face cache"
    raise ConfigError(
        f"features.model={name}: no usable copy in {where} "
        f"({os.environ.get('HF_HOME', '~/.cache/huggingface')})"
        f"{' and HF_HUB_OFFLINE is set' if offline else ' nor on the hub'} "
        f"({type(error).__name__}: {str(error).splitlines()[0] if error else ''}). Fetch it on "
        f"a machine with network (`hf download {name}`, then copy the cache), or give a "
        "local folder with the model and its preprocessor_config.json"
    )
