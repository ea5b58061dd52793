"""The pitfall record (one checklist entry) and the checks that statistics make on their own inputs.

`record` is the one shape of a checklist entry `{check, item, status, detail[, values]}` (Lones, arXiv
2108.02497: `item` is the guide's section number). It lives here, at the bottom of `stats`, so that both
`slimlab.stats` (the checks on a table of scores) and `slimlab.evaluate.pitfalls` (the checks on data) use
it without `stats` importing anything above itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Status = Literal["pass", "warn", "fail"]
RECOMMENDED_SEEDS = 5  # below this the spread over seeds is a guess (Lones 4.4); a rule of thumb


def record(check: str, item: str, status: Status, detail: str, **values: object) -> dict:
    """One checklist entry; extra keyword arguments go under `values`."""
    out: dict = {"check": check, "item": item, "status": status, "detail": detail}
    if values:
        out["values"] = values
    return out


def seeds_check(test: str, n: int, alpha: float = 0.05, what: str = "") -> dict:
    """Too few seeds or folds for the test used (Lones 4.4, 5.3): fail when the test cannot reach
    p < alpha at all with n pairs, warn below RECOMMENDED_SEEDS for tests over seeds or folds. For McNemar,
    n is the number of discordant test samples."""
    from slimlab.stats.choose import min_pairs  # loads scipy.stats: only when a check needs it

    need = min_pairs(test, alpha)
    unit = "discordant samples" if test == "mcnemar_exact" else "seeds or folds"
    prefix = f"{what}: " if what else ""
    if n < need:
        return record(
            "enough runs for the test",
            "4.4",
            "fail",
            f"{prefix}{n} {unit}; {test} needs at least {need} to reach p < {alpha:g} at all",
            n=n,
            minimum=need,
        )
    if test != "mcnemar_exact" and n < RECOMMENDED_SEEDS:
        return record(
            "enough runs for the test",
            "4.4",
            "warn",
            f"{prefix}{n} {unit}; {test} runs with {need}, but fewer than {RECOMMENDED_SEEDS} leave the "
            "spread poorly estimated",
            n=n,
            minimum=need,
        )
    return record(
        "enough runs for the test", "4.4", "pass", f"{prefix}{n} {unit} for {test}", n=n, minimum=need
    )


def baseline_variant_check(variants: Iterable[str], baseline: str | None) -> dict:
    """A comparison needs its baseline variant among the variants (Lones 5.2)."""
    names = list(dict.fromkeys(variants))
    if baseline is None:
        return record("baseline variant", "5.2", "fail", "no baseline variant is named")
    if baseline not in names:
        return record(
            "baseline variant",
            "5.2",
            "fail",
            f"baseline {baseline!r} is not among the variants: {', '.join(names)}",
        )
    return record("baseline variant", "5.2", "pass", f"every variant is compared with {baseline!r}")
