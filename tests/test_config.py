"""The Hydra config tree: every model x data x hardware(cpu) composes and instantiates."""

import inspect
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from ser.config import CONFIG_DIR
from ser.data.corpora import IEMOCAP, EmoDB, Manifest
from ser.instantiate import instantiate_dict
from ser.models import NETWORKS
from ser.module import SERModule
from ser.results import search_trials


@pytest.fixture
def data_overrides(iemocap_tree, emodb_manifest):
    return {
        "emodb": (["data=emodb"], EmoDB),
        "iemocap": (["data=iemocap", f"data.root={iemocap_tree.root}"], IEMOCAP),
        "manifest": (["data=manifest", f"data.manifest={emodb_manifest}"], Manifest),
    }


@pytest.mark.parametrize("data", ["emodb", "iemocap", "manifest"])
@pytest.mark.parametrize("model", sorted(NETWORKS))
def test_every_model_and_corpus_composes_and_instantiates(
    compose_config, data_overrides, model, data
):
    overrides, corpus_type = data_overrides[data]
    cfg = compose_config([f"model={model}", "hardware=cpu", "logger=csv", "debug=fast", *overrides])
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    assert isinstance(datamodule.corpus, corpus_type)
    assert datamodule.fold.index == cfg.fold == 0
    module = hydra.utils.instantiate(cfg.model, class_names=list(datamodule.classes))
    assert isinstance(module, SERModule)
    assert isinstance(module.net, NETWORKS[model])
    assert module.name == model
    cls = NETWORKS[model]
    assert module.hparams["net"]["_target_"] == f"{cls.__module__}.{cls.__qualname__}"
    callbacks = instantiate_dict(cfg.callbacks)
    loggers = instantiate_dict(cfg.logger)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert isinstance(trainer, L.Trainer)
    assert type(trainer.accelerator).__name__ == "CPUAccelerator"
    assert trainer.checkpoint_callback.monitor == "val/uar"


#: the network arguments the run gives from the data (SERModule's ``input_shape``)
INPUT_SIZES = ("in_channels", "frames", "n_mels")


def _constructor_defaults(cls: type) -> dict:
    """``cls``'s keyword defaults (but ``num_classes``), tuples as lists (as YAML has them)."""

    def as_lists(value):
        return [as_lists(v) for v in value] if isinstance(value, tuple | list) else value

    return {
        k: as_lists(p.default)
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if k not in ("self", "num_classes", *INPUT_SIZES)
    }


@pytest.mark.parametrize("variant", ["width=full", "width=small", "debug=fast"])
@pytest.mark.parametrize("model", sorted(NETWORKS))
def test_composed_model_config_is_what_the_network_gets(compose_config, model, variant):
    """conf/model/<model>.yaml (on conf/model/_base/module.yaml, with the width files)
    composes and instantiates; the network gets exactly the composed ``model.net`` values,
    one for every constructor argument but the input sizes (from the front-end and
    datamodule.segment_s: ``input_shape``).
    At width=full they are the constructor's defaults (what bench/throughput.py times as
    ``<model>``); width=small is conf/model/_width/small_<model>.yaml on top of them (what it
    times as ``<model>@small``)."""
    cls = NETWORKS[model]
    cfg = compose_config([f"model={model}", variant])
    assert cfg.model.name == model
    assert cfg.model.net._target_ == f"ser.models.{cls.__name__}"
    assert cfg.model.net._partial_ is True and cfg.model.net._convert_ == "all"
    net_cfg = OmegaConf.to_container(cfg.model.net, resolve=True)
    yaml = {k: v for k, v in net_cfg.items() if not k.startswith("_")}
    defaults = _constructor_defaults(cls)
    assert set(yaml) == set(defaults), "model.net must list every constructor argument"
    if variant == "width=full":
        assert yaml == defaults
    elif variant == "width=small":
        small = OmegaConf.load(CONFIG_DIR / "model" / "_width" / f"small_{model}.yaml")
        assert yaml == {**defaults, **OmegaConf.to_container(small)}
    module = hydra.utils.instantiate(
        cfg.model, class_names=["a", "b", "c", "d"], input_shape=(3, 300, 40)
    )
    assert isinstance(module, SERModule) and type(module.net) is cls
    target = f"{cls.__module__}.{cls.__qualname__}"
    assert module.hparams["net"] == {"_target_": target, "_partial_": True, **yaml}
    net = module.net.eval()
    assert (net.in_channels, net.frames, net.n_mels) == (3, 300, 40)
    with torch.no_grad():
        log_p = net(torch.randn(2, net.in_channels, net.frames, net.n_mels))
    assert log_p.shape == (2, 4)


@pytest.mark.parametrize("model", sorted(NETWORKS))
def test_network_input_shape_follows_features_and_datamodule(compose_config, model):
    """The network is built for the data module's segments: other features (64 bands) or
    segments (2 s) change it with them (ADSRNN's windows * window_frames must stay equal to
    the frames)."""
    overrides = ["features.n_mels=64", "datamodule.segment_s=2.0"]
    if model == "adsrnn":
        overrides.append("model.net.window_frames=20")
    cfg = compose_config([f"model={model}", "debug=fast", *overrides])
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    assert datamodule.input_shape == (3, 200, 64)
    net = hydra.utils.instantiate(
        cfg.model, class_names=["a", "b"], input_shape=datamodule.input_shape
    ).net.eval()
    assert (net.in_channels, net.frames, net.n_mels) == (3, 200, 64)
    with torch.no_grad():
        assert net(torch.randn(2, 3, 200, 64)).shape == (2, 2)


@pytest.mark.parametrize("model", sorted(NETWORKS))
def test_debug_preset_shrinks_each_model(compose_config, model):
    def params(overrides):
        cfg = compose_config([f"model={model}", *overrides])
        net = hydra.utils.instantiate(cfg.model, class_names=["a", "b", "c", "d"]).net
        return sum(p.numel() for p in net.parameters())

    assert params(["debug=fast"]) * 20 < params([])


def test_seed_protocol_preset(compose_config, iemocap_tree):
    cfg = compose_config(["experiment=seed_iemocap", f"data.root={iemocap_tree.root}"])
    assert cfg.data._target_.endswith("IEMOCAP")
    assert cfg.datamodule.balance._target_.endswith("FixedPerClass")
    assert cfg.datamodule.balance.n == 300
    assert cfg.model.optimizer.lr == 1e-5
    assert list(cfg.model.optimizer.betas) == [0.5, 0.999]
    assert cfg.model.optimizer.weight_decay == 1e-5
    assert cfg.model.mse_weight == 0.01
    assert cfg.trainer.max_steps == 5000
    assert cfg.trainer.val_check_interval == 5
    assert cfg.task_name == "seed_iemocap"
    acrnn = compose_config(
        ["experiment=seed_iemocap", "model=acrnn", f"data.root={iemocap_tree.root}"]
    )
    assert acrnn.datamodule.batch_size == 40
    assert cfg.datamodule.batch_size == 30
    # ADRNN under the preset: NLL + 0.01 MSE + center loss (docs/spec.md, I3)
    adrnn = compose_config(
        ["experiment=seed_iemocap", "model=adrnn", f"data.root={iemocap_tree.root}"]
    )
    assert adrnn.model.mse_weight == 0.01 and adrnn.model.center_loss is not None


@pytest.mark.parametrize("experiment", ["seed_iemocap", "emodb_4class"])
def test_presets_turn_on_the_original_preprocessing(compose_config, iemocap_tree, experiment):
    data = [f"data.root={iemocap_tree.root}"] if experiment == "seed_iemocap" else []
    base = compose_config(["data=iemocap", *data] if data else [])
    cfg = compose_config([f"experiment={experiment}", *data])
    assert base.features.peak_normalize is False and base.datamodule.padding == "mean"
    assert cfg.features.peak_normalize is True and cfg.datamodule.padding == "zeros"
    base_dm, dm = hydra.utils.instantiate(base.datamodule), hydra.utils.instantiate(cfg.datamodule)
    assert type(dm.corpus) is type(base_dm.corpus)
    assert dm.features.peak_normalize and not base_dm.features.peak_normalize
    assert (dm.padding, base_dm.padding) == ("zeros", "mean")
    # the same corpus with peak normalisation: other cache entries
    assert dm.cache.directory != base_dm.cache.directory
    assert dm.cache.meta["corpus"] == base_dm.cache.meta["corpus"]


def test_data_iemocap_fixes_the_minority_class_to_hap(compose_config, data_overrides):
    for data in ("iemocap", "emodb", "manifest"):
        overrides, _ = data_overrides[data]
        cfg = compose_config(overrides)
        dm = hydra.utils.instantiate(cfg.datamodule)
        assert cfg.datamodule.train_segments.minority_classes is None
        if data == "iemocap":
            assert list(cfg.data.minority_classes) == ["hap"]
            assert dm.corpus.minority_classes == ("hap",)
        else:  # the automatic choice, overridable like any corpus option
            assert cfg.data.minority_classes is None
            assert dm.corpus.minority_classes is None
            fixed = compose_config([*overrides, "data.minority_classes=[sad]"])
            assert hydra.utils.instantiate(fixed.datamodule).corpus.minority_classes == ("sad",)


def test_adrnn_uses_center_loss_by_default(compose_config):
    assert compose_config(["model=adrnn"]).model.center_loss is not None
    assert compose_config(["model=adsrnn"]).model.center_loss is None


def test_an_unknown_group_option_is_hydras_error_listing_the_real_options(compose_config):
    with pytest.raises(MissingConfigException) as error:
        compose_config(["model=lstm"])
    options = str(error.value).split("Available options in 'model':", 1)[1]
    listed = options.split("Config search path")[0].split()
    assert listed == sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))


@pytest.mark.parametrize(
    ("override", "expected"), [([], False), (["compile=true"], True),
                               (["compile={mode: max-autotune}"], {"mode": "max-autotune"})]
)  # fmt: skip
def test_compile_reaches_the_module(compose_config, override, expected):
    cfg = compose_config(["model=asrnn", *override])
    module = hydra.utils.instantiate(cfg.model, class_names=["a", "b", "c", "d"])
    assert module.compile_net == expected


RECIPE_SEARCH = Path(__file__).parents[1] / "docs" / "results" / "search-adsrnn-emodb"


@pytest.mark.parametrize("model", sorted(NETWORKS))
def test_emodb_best_is_the_documented_search_s_best_trial(compose_config, model):
    """The preset holds what the search found, for every model: rerunning or widening the
    search without updating the preset (or editing the preset by hand) fails here."""
    best = search_trials(RECIPE_SEARCH)[0]
    trial_overrides = [o for o in best["params"] if not o.startswith("model=")]
    trial = compose_config([*trial_overrides, f"model={model}"])
    preset = compose_config(["experiment=emodb_best", f"model={model}"])
    plain = compose_config([f"model={model}"])

    def part(cfg, key):
        value = OmegaConf.select(cfg, key)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    for key in ("model", "features", "data", "trainer.max_steps", "datamodule.batch_size"):
        assert part(preset, key) == part(trial, key), key
    assert part(preset, "model") != part(plain, "model")
    assert preset.task_name == "emodb_best" and preset.test is True
