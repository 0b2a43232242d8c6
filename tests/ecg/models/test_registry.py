"""The registry: names, options, errors, CSV-style values, named variants and their pinned sizes."""
from __future__ import annotations

import pytest
import torch

from ecg.models import VARIANTS, create_model, create_variant, list_models, model_options, resolve_options
from ecg.segmentation import parse_segmentation

# Parameter counts at 8 leads, 34 classes, length 5000, as the code produces them (also in docs/models.md).
# A change here means the architecture changed: update docs/models.md with it.
PINNED = {
    "resnet50": 23575970,
    "resnet101": 42568098,
    "resnext50_2x64d": 44267682,
    "resnext101_4x64d": 161515170,
    "seresnet50": 26106962,
    "seresnet101": 47345810,
    "ecgnet_v1": 1461858,
    "ecgnet_v2": 3177954,
    "ecgnet_v3": 2197242,
    "lstm_v1": 42274,
    "lstm_v2": 542946,
    "gru_v1": 213218,
    "gru_v1_shared": 57314,
    "gru_v2.1": 346850,
    "gru_v2.2": 343266,
    "gru_v3_500x10": 992226,
    "gru_v3_100x50": 398306,
    "gru_v3_50x100": 347106,
    "hybrid_1to1": 3868820,
    "hybrid_8to8": 3998754,
    "hybrid_1to8": 3991572,
}


def n_params(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_list_models() -> None:
    assert list_models() == ["resnet", "resnext", "seresnet", "ecgnet", "lstm", "gru", "hybrid"]


def test_every_variant_is_pinned() -> None:
    assert set(VARIANTS) == set(PINNED)


@pytest.mark.parametrize("name", list(PINNED))
def test_variant_parameter_count(name: str) -> None:
    with torch.device("meta"):  # shapes only: counting 160M parameters needs no memory or init time
        model = create_variant(name, 8, 34, 5000)
    assert n_params(model) == PINNED[name]


def test_gru_parameter_count_by_hand() -> None:
    """Shared GRU(50 -> 64) over 8 leads, FC 512 -> 64, FC 64 -> 34."""
    gru = 3 * (50 * 64 + 64 * 64 + 2 * 64)
    assert n_params(create_variant("gru_v1_shared", 8, 34, 5000)) == gru + (8 * 64 * 64 + 64) + (64 * 34 + 34)
    # Per-lead weights: eight GRUs.
    assert n_params(create_variant("gru_v1", 8, 34, 5000)) == 8 * gru + (8 * 64 * 64 + 64) + (64 * 34 + 34)


def test_age_sex_adds_inputs_where_the_study_joins_them() -> None:
    # Before the last FC (ResNet): 4 more inputs x 34 outputs.
    base = n_params(create_model("resnet", 8, 34, 5000, depth=14, width=8))
    assert n_params(create_model("resnet", 8, 34, 5000, depth=14, width=8, use_age_sex=True)) == base + 4 * 34
    # GRU v3: before the last two FC layers, i.e. into the first of them (fc_hidden = 64 outputs).
    base = n_params(create_variant("gru_v3_50x100", 8, 34, 5000, use_age_sex=False))
    assert PINNED["gru_v3_50x100"] == base + 4 * 64


def test_resnext_width_is_cardinality_times_base_width() -> None:
    model = create_model("resnext", 8, 3, 5000, depth=14, width=8, cardinality=4, base_width=16)
    conv2 = model.body.stages[0].conv2
    assert conv2.groups == 4 and conv2.in_channels == 4 * int(8 * 16 / 64)
    assert conv2.kernel_size == (9,)


def test_unknown_family_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown model family 'vgg'; valid families: resnet, resnext, seresnet"):
        create_model("vgg", 8, 3, 5000)
    with pytest.raises(ValueError, match="valid families"):
        model_options("transformer")


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depthh'\] for model family 'resnet'; valid options: "
                                         r"base_width, block_kernel, cardinality, depth, dropout"):
        create_model("resnet", 8, 3, 5000, depthh=50)


def test_unknown_version_and_variant() -> None:
    with pytest.raises(ValueError, match="family 'gru' has no version 'v4'; valid versions: v1, v2.1, v2.2, v3"):
        create_model("gru", 8, 3, 5000, version="v4")
    with pytest.raises(ValueError, match="unknown model variant 'resnet18'; valid variants: resnet50"):
        create_variant("resnet18", 8, 3, 5000)


def test_bad_values_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"ResNet depth 34 unknown; valid depths: \[14, 26, 50, 101, 152\]"):
        create_model("resnet", 8, 3, 5000, depth=34)
    with pytest.raises(ValueError, match="option depth='fifty' of model family 'resnet' must be a int"):
        create_model("resnet", 8, 3, 5000, depth="fifty")
    with pytest.raises(ValueError, match="kernel set '3;5' must be comma-separated"):
        create_model("ecgnet", 8, 3, 5000, version="v2", kernels="3;5")
    with pytest.raises(ValueError, match="hybrid connection '2to2' unknown; valid: 1to1, 8to8, 1to8"):
        create_model("hybrid", 8, 3, 5000, connection="2to2")
    with pytest.raises(ValueError, match="n_leads must be a positive int"):
        create_model("gru", 0, 3, 5000)
    with pytest.raises(ValueError, match="downsamples_1d=5 exceeds blocks_1d=4"):
        create_model("ecgnet", 8, 3, 5000, version="v3", downsamples_1d=5)


def test_csv_strings_are_converted_to_option_types() -> None:
    """A config read back from a CSV row (all strings, ints as floats) rebuilds the same model."""
    options = resolve_options("gru", {"version": "v3", "hidden": "16", "layers": 2.0, "bidirectional": "True",
                                      "dropout": "0.25", "use_age_sex": "false", "segmentation": "50x100"})
    assert options["hidden"] == 16 and options["layers"] == 2 and options["bidirectional"] is True
    assert options["dropout"] == 0.25 and options["use_age_sex"] is False and options["version"] == "v3"
    with pytest.raises(ValueError, match="option layers=2.5 of model family 'gru' must be a int"):
        resolve_options("gru", {"layers": 2.5})
    with pytest.raises(ValueError, match="option shared='maybe' of model family 'gru' must be a bool"):
        resolve_options("gru", {"shared": "maybe"})


def test_model_options_merge_version_presets() -> None:
    assert model_options("lstm")["segmentation"] == "1"  # v1: the raw sequence, as the study ran it
    assert model_options("lstm", "v2")["segmentation"] == "50"
    v3 = model_options("ecgnet", "v3")
    assert (v3["blocks_2d"], v3["blocks_1d"], v3["downsamples_1d"]) == (1, 4, 4)
    assert model_options("ecgnet")["stem_kernel"] == 50
    assert model_options("seresnet")["se_reduction"] == 16 and model_options("resnet")["se_reduction"] == 0
    # The caller still wins over a version's preset.
    assert resolve_options("ecgnet", {"version": "v3", "blocks_1d": 6})["blocks_1d"] == 6
    for family in list_models():
        assert {"use_age_sex", "dropout"} <= set(model_options(family))


@pytest.mark.parametrize("text,length,expected", [
    ("50x100", 5000, (50, 100)), ("500x10", 5000, (500, 10)), ("100x50", 5000, (100, 50)),
    ("50", 2500, (50, 50)), ("1", 5000, (1, 5000)), ("125X80", 10000, (125, 80)),
])
def test_segmentation(text: str, length: int, expected: tuple[int, int]) -> None:
    assert parse_segmentation(text, length) == expected


def test_segmentation_errors() -> None:
    with pytest.raises(ValueError, match=r"'50x100': 50 x 100 = 5000 is not the length 2500 \(use '50x50' or '50'\)"):
        parse_segmentation("50x100", 2500)
    with pytest.raises(ValueError, match="'300': 300 features per step do not divide the length 5000"):
        create_model("gru", 8, 3, 5000, segmentation="300")
    with pytest.raises(ValueError, match="must be 'FxS'"):
        parse_segmentation("fifty", 5000)


def test_recurrent_model_checks_input_length() -> None:
    model = create_model("gru", 8, 3, 5000, hidden=4)
    with pytest.raises(ValueError, match="built for length 5000 got input of length 2500"):
        model(torch.zeros(1, 8, 2500))
