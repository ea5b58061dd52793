"""A treatment is a frozen config plus a handler, applied through one verb: `apply(model, config)`.

The handler is found by the config's type in a registry. Configs serialise with a kind and a version,
so that a stored trial says exactly which treatment, at which version of its meaning, it received.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from slimlab.data import Dataset
from slimlab.errors import ConfigError, SlimlabError, UnknownNameError
from slimlab.train import Trainer


class TreatmentConfig(BaseModel):
    """Base of every treatment config. Subclasses set `kind` and declare their fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
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
    itself as `teacher` (for distillation; read-only, never modified). A treatment may put
    JSON-able records of what it did into `artifacts` (e.g. per-round accuracies); the runner stores them
    with the trial."""

    seed: int = 0
    trainer: Trainer | None = None
    data: Dataset | None = None
    initial_state: dict[str, Any] | None = None
    teacher: nn.Module | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)

    def require_training(self, kind: str) -> tuple[Trainer, Dataset]:
        if self.trainer is None or self.data is None:
            raise SlimlabError(
                f"treatment {kind!r} needs training; pass a TreatmentContext with a trainer and data"
            )
        return self.trainer, self.data


C = TypeVar("C", bound=TreatmentConfig)
Handler = Callable[[nn.Module, Any, TreatmentContext], nn.Module]
_HANDLERS: dict[type[TreatmentConfig], Handler] = {}
_KINDS: dict[str, type[TreatmentConfig]] = {}


def register_treatment(config_type: type[C]) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        if config_type.kind in _KINDS:
            raise ValueError(f"treatment kind {config_type.kind!r} is registered twice")
        _KINDS[config_type.kind] = config_type
        _HANDLERS[config_type] = handler
        return handler

    return decorate


def known_treatments() -> list[str]:
    return sorted(_KINDS)


def treatment_types() -> list[type[TreatmentConfig]]:
    return [_KINDS[k] for k in known_treatments()]


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
        handler = _HANDLERS.get(type(config))
        if handler is None:
            raise UnknownNameError("treatment config", type(config).__name__, [t.__name__ for t in _HANDLERS])
        model = handler(model, config, context)
    return model


def parse_treatment(spec: Any, where: str = "treatment") -> TreatmentConfig:
    """A treatment config from its dict form, e.g. {"kind": "magnitude_prune", "sparsity": 0.9}."""
    if isinstance(spec, TreatmentConfig):
        return spec
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"`{where}` must be a table with a `kind`; got {spec!r}")
    fields = {k: v for k, v in spec.items() if k not in ("kind", "version")}
    config_type = _KINDS.get(spec["kind"])
    if config_type is None:
        raise UnknownNameError("treatment", str(spec["kind"]), known_treatments(), f"{where}.kind")
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
