"""Every space samples valid configs: 20 seeded random draws each build a model that runs forward."""
from __future__ import annotations

import pickle

import optuna
import pytest
import torch

from ecg.features.layout import input_width
from ecg.models import create_model, model_options
from ecg.train import TrainConfig
from spaces import FAMILY_SPACES, SPACES, SpaceContext, build_space, describe
from spaces.common import segmentations
from ecg.flat_config import FS_KEY
from spaces.rate import at_rate

optuna.logging.set_verbosity(optuna.logging.WARNING)
CPU = SpaceContext(gpu=False, length=2500, max_epochs=6, fs=250)
GPU = SpaceContext(gpu=True, length=5000, max_epochs=60, fs=500)


def at_trial_rate(ctx: SpaceContext, config: dict, name: str, drawn: object) -> object:
    """What the config holds for option `name` drawn as `drawn` in the study: scaled to the trial's data/fs."""
    return at_rate({FS_KEY: config[FS_KEY], name: drawn}, ctx)[name]


def unflatten_dict(flat: dict) -> dict:
    """"a/b": 1 -> {"a": {"b": 1}}, as Ray Tune nests the names a define-by-run space returns."""
    nested: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def sample(name: str, ctx: SpaceContext, n: int, seed: int = 0) -> list[dict]:
    """`n` configs as the search's OptunaSearch builds them: what the space returns, unflattened."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = build_space(name, ctx)
    configs = []
    for _ in range(n):
        trial = study.ask()
        configs.append(unflatten_dict(space(trial)))
        study.tell(trial, 0.0)  # the study checks each name keeps one distribution across trials
    return configs


@pytest.mark.parametrize("name", list(SPACES))
def test_twenty_draws_build_models_that_run(name: str) -> None:
    torch.manual_seed(0)
    families = set()
    for config in sample(name, CPU, 20):
        families.add(config["family"])
        length = CPU.length_at(config["data"]["fs"])  # the model is built for its trial's input rate
        model = create_model(config["family"], n_leads=8, n_classes=5, length=length, **config["model"])
        model.eval()
        with torch.no_grad():
            # The widest per-record input (age/sex and every feature): each head takes its columns.
            logits = model(torch.randn(2, 8, length), torch.zeros(2, input_width(8)))
        assert logits.shape == (2, 5)
        assert torch.isfinite(logits).all()
        optim = TrainConfig(**config["optim"])
        assert optim.epochs == CPU.max_epochs and optim.patience == 0
        assert 1e-4 <= optim.lr <= 1e-2
    if name == "all":
        assert len(families) >= 4  # 20 draws over 7 families reach most of them
    else:
        assert families == {name}


@pytest.mark.parametrize("name", list(FAMILY_SPACES))
def test_names_are_model_options(name: str) -> None:
    """Every sampled `model/<option>` is an option of the family, so the config rebuilds its model."""
    options = set(model_options(name))
    for ctx in (CPU, GPU):
        for param, _ in describe(name, ctx, n_draws=100):
            if param.startswith("model/"):
                assert param.split("/", 1)[1] in options


@pytest.mark.parametrize("name", ["ecgnet", "resnet", "gru", "hybrid"])
def test_cpu_spaces_are_smaller_than_gpu_spaces(name: str) -> None:
    gpu = SpaceContext(gpu=True, length=2500, max_epochs=6, fs=250)
    cpu_params, gpu_params = ([sum(p.numel() for p in create_model(
        c["family"], n_leads=8, n_classes=5, length=ctx.length_at(c["data"]["fs"]), **c["model"]).parameters())
        for c in sample(name, ctx, 8)] for ctx in (CPU, gpu))
    assert max(cpu_params) < max(gpu_params)


def test_segmentations_are_the_factorisations_of_the_length() -> None:
    at_5000 = segmentations(5000, min_steps=10, max_steps=100)
    assert {"500x10", "100x50", "50x100"} <= set(at_5000)
    for text in at_5000:
        features, steps = map(int, text.split("x"))
        assert features * steps == 5000 and 10 <= steps <= 100
    assert segmentations(2500, min_steps=10, max_steps=50) == ["250x10", "125x20", "100x25", "50x50"]
    with pytest.raises(ValueError, match="no factorisation"):
        segmentations(4999, min_steps=10, max_steps=100)  # prime-ish: 4999 is prime


def test_all_space_qualifies_family_parameters_and_returns_plain_names() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    space = build_space("all", CPU)
    for _ in range(30):
        trial = study.ask()
        constants = space(trial)
        family = trial.params["family"]
        model_params = {k for k in trial.params if "model/" in k}
        assert model_params and all(k.startswith(f"{family}/model/") for k in model_params)
        for key in model_params:
            plain = key.split("/", 1)[1]
            assert constants[plain] == at_trial_rate(CPU, constants, plain, trial.params[key])
        study.tell(trial, 0.0)


def test_gru_v3_always_uses_age_and_sex() -> None:
    configs = [c for c in sample("gru", CPU, 60) if c["model"]["version"] == "v3"]
    assert configs and all(c["model"]["use_age_sex"] is True for c in configs)


def test_seeded_sampling_is_reproducible() -> None:
    assert sample("ecgnet", CPU, 5, seed=7) == sample("ecgnet", CPU, 5, seed=7)
    assert sample("ecgnet", CPU, 5, seed=7) != sample("ecgnet", CPU, 5, seed=8)


def test_describe_lists_conditional_parameters_with_ranges() -> None:
    rows = dict(describe("ecgnet", CPU))
    assert rows["model/version"] == "{v1, v2, v3}"
    assert "model/kernel" in rows and "model/kernels" in rows  # v1 only, v2/v3 only
    assert rows["optim/lr"] == "[0.0001, 0.01] log"
    assert rows["optim/epochs"] == "= 6"
    assert rows["family"] == "= ecgnet"


def test_unknown_space_is_refused_with_the_list() -> None:
    with pytest.raises(ValueError, match="unknown search space 'nope'.*ecgnet"):
        build_space("nope", CPU)


@pytest.mark.parametrize("name", list(SPACES))
def test_every_space_pickles_and_returns_the_config_under_plain_names(name: str) -> None:
    """Ray pickles the searcher with its space into the experiment state; the trial's config uses the names
    the models and TrainConfig know, never the `all` space's family-qualified study names."""
    ctx = SpaceContext(gpu=False, length=2500, max_epochs=6, metric="val_loss", fs=250)
    space = pickle.loads(pickle.dumps(build_space(name, ctx)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        trial = study.ask()
        config = space(trial)
        assert all(key == "family" or key.split("/")[0] in ("model", "optim", "data") for key in config), config
        assert config["optim/metric"] == "val_loss" and config["optim/epochs"] == 6
        for param, value in trial.params.items():
            plain = param if param == "family" or param.split("/")[0] in ("model", "optim", "data") \
                else param.split("/", 1)[1]
            if name == "all" and plain != param:
                assert param.split("/")[0] == config["family"]  # qualified by the trial's own family
            assert config[plain] == at_trial_rate(ctx, config, plain, value)
        study.tell(trial, 0.0)
