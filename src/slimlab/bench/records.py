"""The one way to look a benchmark record up in a trial's `bench` list (by backend, scenario, batch)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def select(
    records: Iterable[Mapping],
    *,
    scenario: str | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
    ok: bool = True,
) -> list[Mapping]:
    """The records that match every criterion given (None: any). With `ok`, only measured records
    (status "ok"; a record without a status is one from before statuses existed, and counts as ok). A
    record without a scenario is from before scenarios existed, and matches any scenario."""
    return [
        r
        for r in records
        if (not ok or r.get("status", "ok") == "ok")
        and (backend is None or r.get("backend") == backend)
        and (scenario is None or r.get("scenario", scenario) == scenario)
        and (batch_size is None or r.get("batch_size") == batch_size)
    ]


def find(
    records: Iterable[Mapping], scenario: str, batch_size: int, backend: str = "eager"
) -> Mapping | None:
    """The first measured record of `backend` for `scenario` at `batch_size`, or None."""
    found = select(records, scenario=scenario, batch_size=batch_size, backend=backend)
    return found[0] if found else None


def p50_ms(
    records: Iterable[Mapping], scenario: str, batch_size: int, backend: str = "eager"
) -> float | None:
    record = find(records, scenario, batch_size, backend)
    return record["latency_ms"]["p50"] if record else None


def throughput(records: Iterable[Mapping], batch_size: int, backend: str = "eager") -> float | None:
    record = find(records, "offline", batch_size, backend)
    return record["throughput_per_s"] if record else None
