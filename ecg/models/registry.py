"""The model registry: one builder per architecture family, its option defaults and its versions.

A family module registers its builder with `@register_family(name, defaults, versions)`; `create_model`
merges family defaults, the chosen version's presets and the caller's options (caller wins), checks every
name and type, and calls the builder. Options are plain values so a config is a CSV row and can be rebuilt
from it: values read back from a CSV as strings ("True", "64", "0.1") are converted to the default's type.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ecg.values import convert

Builder = Callable[..., nn.Module]

# Every family accepts these; a family may change the defaults.
# `features` (ecg.features.layout.FEATURE_SETS) picks hand-made features that join where age/sex joins.
COMMON_DEFAULTS: dict[str, Any] = {"use_age_sex": False, "dropout": 0.1, "features": "none"}


@dataclass(frozen=True)
class Family:
    """A registered architecture family: its builder, option defaults and per-version presets."""

    name: str
    builder: Builder
    defaults: dict[str, Any]
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options(self, version: str | None = None) -> dict[str, Any]:
        """Defaults for `version` (the family's default version when None)."""
        merged = dict(self.defaults)
        if self.versions:
            version = version if version is not None else merged["version"]
            merged.update(self.versions[version], version=version)
        return merged


_FAMILIES: dict[str, Family] = {}


def register_family(
    name: str, defaults: dict[str, Any], versions: dict[str, dict[str, Any]] | None = None
) -> Callable[[Builder], Builder]:
    """Decorator: register `builder(n_leads, n_classes, length, **options)` as family `name`.

    `versions` maps a version name to the options it presets (the caller may still override them);
    a family with versions must have a "version" default.
    """

    def decorate(builder: Builder) -> Builder:
        if name in _FAMILIES:
            raise ValueError(f"model family {name!r} is registered twice")
        full = {**COMMON_DEFAULTS, **defaults}
        if versions and full.get("version") not in versions:
            raise ValueError(f"family {name!r}: default version {full.get('version')!r} not in {sorted(versions)}")
        for version, preset in (versions or {}).items():
            unknown = sorted(set(preset) - set(full))
            if unknown:
                raise ValueError(f"family {name!r} version {version!r} presets unknown options {unknown}")
        _FAMILIES[name] = Family(name, builder, full, dict(versions or {}))
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of the registered families, in registration order."""
    return list(_FAMILIES)


def get_family(name: str) -> Family:
    """The registered family `name`; ValueError listing the known ones otherwise."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; valid families: {', '.join(_FAMILIES)}") from None


def model_options(family: str, version: str | None = None) -> dict[str, Any]:
    """The options of `family` with their defaults (for `version`, or the default version)."""
    fam = get_family(family)
    if version is not None and version not in fam.versions:
        raise ValueError(f"family {family!r} has no version {version!r}; valid versions: {', '.join(fam.versions)}")
    return fam.options(version)


def resolve_options(family: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults, version presets and `options` merged and type-checked; ValueError names any bad option."""
    fam = get_family(family)
    unknown = sorted(set(options) - set(fam.defaults))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model family {family!r}; valid options: {', '.join(sorted(fam.defaults))}"
        )
    version = options.get("version")
    if version is not None and version not in fam.versions:
        raise ValueError(f"family {family!r} has no version {version!r}; valid versions: {', '.join(fam.versions)}")
    merged = fam.options(None if version is None else str(version))
    for key, value in options.items():
        merged[key] = _coerce(family, key, value, fam.defaults[key])
    return merged


def create_model(family: str, n_leads: int, n_classes: int, length: int, **options: Any) -> nn.Module:
    """Build a model of `family` for inputs `[B, n_leads, length]` and `n_classes` outputs.

    The model's `forward(x, extra=None)` maps `x[B, n_leads, length]` (mV) and the per-record inputs
    `extra[B, E]` (`ECGDataset.extra_inputs()`: age/sex `[B, 4]`, then any attached features; needed only with
    `use_age_sex=True` or `features` other than "none") to logits `[B, n_classes]`.
    """
    for name, value in (("n_leads", n_leads), ("n_classes", n_classes), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    merged = resolve_options(family, options)
    return _FAMILIES[family].builder(n_leads=n_leads, n_classes=n_classes, length=length, **merged)


def _coerce(family: str, key: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of `default` (CSV round trips give strings, numpy scalars, floats)."""
    try:
        return convert(value, type(default))
    except ValueError:
        raise ValueError(
            f"option {key}={value!r} of model family {family!r} must be a {type(default).__name__} "
            f"(default {default!r})") from None
