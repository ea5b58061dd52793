"""The trial record: what one trial (dataset x seed x variant) produced, typed, with one builder.

The runner builds it (`TrialRecord.ok` / `TrialRecord.failed`), the executors send it back to the driver,
the store writes and reads it, and the analysis reads its attributes. `to_dict()` is results.json's
`trials[]` entry, whose published shape (the keys of a record) is unchanged from the untyped dict it
replaces; `from_dict()` reads it back, so stores written before the type existed still load. Fields the
type does not know (a newer or older slimlab, a study's own) are kept in `extra` and written back out.

Lower layers (`stats`, `evaluate`) take plain mappings, never this type: a record is passed to them as
`to_dict()` (or through the read-only mapping view below), so they do not import `experiment`.
"""

from __future__ import annotations

import traceback as traceback_module
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from slimlab.experiment.grid import TrialSpec

Status = Literal["ok", "failed"]

# Optional fields: written to the dict only when set, as the untyped records did.
_OPTIONAL = (
    "predictions",
    "test_openings",
    "traceback",
    "train",
    "artifacts",
    "groups",
    "model_file",
    "model_file_reason",
    "environment",
    "attempts",
    "scores",
    "fidelity",
)


@dataclass
class TrialRecord(Mapping):
    id: str
    variant: str
    seed: int
    dataset: str
    treatments: list[dict]
    status: Status
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    bench: list[dict] = field(default_factory=list)
    predictions: list[int] | None = None
    test_openings: list[dict] | None = None
    traceback: str | None = None
    train: dict | None = None
    artifacts: dict | None = None
    groups: dict | None = None
    model_file: str | None = None
    model_file_reason: str | None = None
    environment: dict | None = None
    attempts: int | None = None
    # Per test sample scores of the experiment's metric (paired per-sample comparisons), and the treated
    # model's fidelity to its dense parent on the validation inputs (issue 12).
    scores: list[float] | None = None
    fidelity: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # model_file is written even when None, once saving was attempted (the reason says why not).
    _model_file_set: bool = field(default=False, repr=False, compare=False)

    # --- the one builder ---------------------------------------------------------------------------

    @classmethod
    def ok(cls, spec: TrialSpec, metrics: dict, **values: Any) -> TrialRecord:
        return cls(**_identity(spec), status="ok", error=None, metrics=metrics, **values)

    @classmethod
    def failed(cls, spec: TrialSpec, error: BaseException) -> TrialRecord:
        return cls(
            **_identity(spec),
            status="failed",
            error=f"{type(error).__name__}: {error}",
            traceback="".join(traceback_module.format_exception(error)),
        )

    def set_model_file(self, path: str | None, reason: str | None) -> None:
        self.model_file, self.model_file_reason, self._model_file_set = path, reason, True

    # --- results.json's shape ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "variant": self.variant,
            "seed": self.seed,
            "dataset": self.dataset,
            "treatments": self.treatments,
            "status": self.status,
            "error": self.error,
            "metrics": self.metrics,
            "bench": self.bench,
        }
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None or (name == "model_file" and self._model_file_set):
                out[name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        if isinstance(data, TrialRecord):
            return data
        known = {f.name for f in fields(cls)} - {"extra", "_model_file_set"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("metrics", {})
        values.setdefault("bench", [])
        values.setdefault("error", None)
        values.setdefault("treatments", [])  # a hand-written or foreign record may leave it out
        record = cls(**values, extra={k: v for k, v in data.items() if k not in known})
        record._model_file_set = "model_file" in data
        return record

    # --- a read-only mapping view, for the lower layers that take plain mappings --------------------

    def __getitem__(self, key: str) -> Any:
        data = self.to_dict()
        return data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    @property
    def is_ok(self) -> bool:
        return self.status == "ok"


def _identity(spec: TrialSpec) -> dict:
    return {
        "id": spec.id,
        "variant": spec.variant.name,
        "seed": spec.seed,
        "dataset": spec.dataset.label,
        "treatments": [t.to_dict() for t in spec.variant.treatments],
    }
