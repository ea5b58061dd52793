"""A treatment is a frozen config plus a handler, applied through one verb: `apply(model, config)`.

The handler is found by the config's type in a registry. Configs serialise with a kind and a version,
so that a stored trial says exactly which treatment, at which version of its meaning, it received.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import ValidationError
from torch import nn

from slimlab.data import Dataset
from slimlab.errors import ConfigError, SlimlabError, UnknownNameError
from slimlab.evaluate.metrics import Metric
from slimlab.identity import Hparams
from slimlab.registry import Registry
from slimlab.train import Trainer


class TreatmentConfig(Hparams):
    """Base of every treatment config. Subclasses set `kind` and declare their fields. A field added with a
    default stays out of `to_dict()`, and so out of trial ids, while at its default (slimlab.identity)."""

    kind: ClassVar[str]
    version: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, **self.model_dump(mode="json")}

    def quick(self) -> TreatmentConfig:
        """This treatment scaled down for a smoke test (`--quick`). Most treatments have nothing to scale."""
        return self


@dataclass
class TreatmentContext:
    """What a treatment may use besides the model: the caller's trainer and data, the trial's seed, and
    the dense parent's state at initialisation (for lottery-ticket rewinding), and the trained dense parent
    itself as `teacher` (for distillation; read-only, never modified), and the run's `metric` (what a
    treatment that measures its own effect, such as mixed precision's ranking, scores on; None outside a
    run). A treatment may put JSON-able records of what it did into `artifacts` (e.g. per-round
    accuracies); the runner stores them with the trial."""

    seed: int = 0
    trainer: Trainer | None = None
    data: Dataset | None = None
    initial_state: dict[str, Any] | None = None
    teacher: nn.Module | None = None
    metric: Metric | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)

    def require_training(self, kind: str) -> tuple[Trainer, Dataset]:
        if self.trainer is None or self.data is None:
            raise SlimlabError(
                f"treatment {kind!r} needs training; pass a TreatmentContext with a trainer and data"
            )
        return self.trainer, self.data


C = TypeVar("C", bound=TreatmentConfig)
Handler = Callable[[nn.Module, Any, TreatmentContext], nn.Module]


@dataclass(frozen=True)
class TreatmentSpec:
    """A registered treatment: its config type (which carries the kind and version) and its handler."""

    config: type[TreatmentConfig]
    handler: Handler


# kind -> (config type, handler): the one place both directions are found (kind -> config when parsing,
# config -> handler when applying).
TREATMENTS: Registry[TreatmentSpec] = Registry("treatment")


def register_treatment(config_type: type[C]) -> Callable[[Handler], Handler]:
    """Register `config_type` (under its `kind`) with the decorated handler."""

    def decorate(handler: Handler) -> Handler:
        description = (config_type.__doc__ or "").strip().split("\n")[0]
        TREATMENTS.register(config_type.kind, TreatmentSpec(config_type, handler), description=description)
        return handler

    return decorate


def known_treatments() -> list[str]:
    return TREATMENTS.names()


def treatment_types() -> list[type[TreatmentConfig]]:
    return [TREATMENTS.get(k).config for k in known_treatments()]


def apply(
    model: nn.Module,
    treatments: TreatmentConfig | Sequence[TreatmentConfig],
    context: TreatmentContext | None = None,
) -> nn.Module:
    """Apply one treatment or a chain, in order, to a copy of `model`; `model` itself is never changed."""
    chain = [treatments] if isinstance(treatments, TreatmentConfig) else list(treatments)
    context = context or TreatmentContext()
    model = copy.deepcopy(model)
    for config in chain:
        kind = getattr(config, "kind", None)
        spec = TREATMENTS.get(kind) if kind in TREATMENTS else None
        if spec is None or spec.config is not type(config):
            known = [s.config.__name__ for _, s in TREATMENTS.items()]
            raise UnknownNameError("treatment config", type(config).__name__, known)
        model = spec.handler(model, config, context)
    return model


def parse_treatment(spec: Any, where: str = "treatment") -> TreatmentConfig:
    """A treatment config from its dict form, e.g. {"kind": "magnitude_prune", "sparsity": 0.9}."""
    if isinstance(spec, TreatmentConfig):
        return spec
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"`{where}` must be a table with a `kind`; got {spec!r}")
    fields = {k: v for k, v in spec.items() if k not in ("kind", "version")}
    config_type = TREATMENTS.get(spec["kind"], where=f"{where}.kind").config
    if spec.get("version", config_type.version) != config_type.version:
        raise ConfigError(
            f"`{where}.version` is {spec['version']!r}, but this slimlab implements "
            f"{config_type.kind!r} version {config_type.version}"
        )
    try:
        return config_type(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"`{where}.{field}`: {err['msg']}; got {err.get('input')!r}") from None
