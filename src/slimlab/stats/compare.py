"""`compare_scores`: the statistics section for any table of scores, slimlab's or a researcher's own.

A table has one row per (method, dataset, run) with a score; the run is a `seed` or a `fold`. Rows may carry
per-sample correctness (`correct`, a list of 0/1, or in a CSV a string such as "0110" or "0 1 1 0"). For
each dataset, every method is compared with the baseline by the test that the design calls for
(`slimlab.stats.choose`), Holm-adjusted across all comparisons, and given a non-inferiority verdict, an
equivalence (TOST) verdict, an effect size and its power at the margin. Across datasets the methods are
ranked (Friedman, post hoc, critical difference). The pitfalls that the table reveals are listed with
the guide's item numbers. The result is a JSON-able dict: NaN becomes None.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from slimlab.errors import ConfigError, DataFileError, SlimlabError
from slimlab.stats import checks
from slimlab.stats.choose import Design, choose_test, run_test
from slimlab.stats.decisions import equivalence_from_ci, tost_paired
from slimlab.stats.intervals import wilson_ci
from slimlab.stats.paired import paired_comparison
from slimlab.stats.power import power_info
from slimlab.stats.ranking import average_ranks, rank_methods
from slimlab.stats.verdict import holm, holm_verdicts

REQUIRED = ("method", "dataset", "score")
RUN_COLUMNS = ("seed", "fold")
EXPECTED = "columns method, dataset, seed (or fold), score, and optionally correct"


# --- reading and checking the table -------------------------------------------------------------------


def _parse_correct(value: object, where: str, error: type[SlimlabError]) -> list[int] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        parts = (
            text.replace(";", " ").replace(",", " ").split() if any(c in text for c in " ;,") else list(text)
        )
    else:
        parts = list(value)  # type: ignore[call-overload]
    try:
        bits = [int(float(p)) for p in parts]
    except (TypeError, ValueError):
        raise error(
            f"{where}: column `correct` must hold 0/1 per test sample; got {str(value)[:40]!r}"
        ) from None
    if any(b not in (0, 1) for b in bits):
        raise error(f"{where}: column `correct` must hold only 0 and 1")
    return bits


def _normalize(
    rows: Iterable[dict], source: str, error: type[SlimlabError], first_line: int = 1
) -> tuple[list[dict], str]:
    """Check and normalise rows: the columns are present, scores are numbers, and no (method, dataset,
    run) occurs twice. One error names the source, the line or row, the column and what was expected."""
    rows = list(rows)
    if not rows:
        raise error(f"{source}: the table has no rows; expected {EXPECTED}")
    columns = set().union(*(r.keys() for r in rows))
    missing = [c for c in REQUIRED if c not in columns]
    run_column = next((c for c in RUN_COLUMNS if c in columns), None)
    if run_column is None:
        missing.append("seed (or fold)")
    if missing:
        raise error(f"{source}: missing column(s) {', '.join(missing)}; expected {EXPECTED}")
    out, seen = [], {}
    for i, row in enumerate(rows):
        where = f"{source}, {'line' if first_line > 1 else 'row'} {i + first_line}"
        try:
            score = float(row["score"])
        except (TypeError, ValueError):
            raise error(f"{where}: column `score` must be a number; got {row['score']!r}") from None
        if math.isnan(score):
            raise error(f"{where}: column `score` is NaN; drop failed runs or give their score")
        run = row.get(run_column)
        if run is None or str(run).strip() == "":
            raise error(f"{where}: column `{run_column}` is empty")
        try:
            run = int(run)
        except (TypeError, ValueError):
            run = str(run).strip()
        key = (str(row["method"]), str(row["dataset"]), run)
        if key in seen:
            raise error(
                f"{where}: duplicate row for method {key[0]!r}, dataset {key[1]!r}, {run_column} {run!r} "
                f"(first at {seen[key]}); each run must appear once"
            )
        seen[key] = where
        out.append(
            {
                "method": key[0],
                "dataset": key[1],
                "run": run,
                "score": score,
                "correct": _parse_correct(row.get("correct"), where, error),
            }
        )
    return out, run_column


def load_scores(path: str | Path) -> list[dict]:
    """Rows of a CSV of scores, checked. Raises DataFileError naming the file, the line and the column."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file; expected a CSV with {EXPECTED}")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataFileError(f"{path}: cannot read it as CSV ({e})") from None
    rows = [{k: v for k, v in r.items() if k is not None} for r in rows]
    _normalize(rows, str(path), DataFileError, first_line=2)
    return rows


def rows_from_trials(
    trials: Sequence[dict], metric: str = "accuracy", labels: dict[str, Sequence[int]] | None = None
) -> list[dict]:
    """Rows for `compare_scores` from results.json's `trials` (the ones with status "ok"). With `labels`
    (dataset -> test labels), each trial's per-sample `predictions` become its `correct` column, which
    lets a one-seed experiment use McNemar's test."""
    rows = []
    for t in trials:
        if t.get("status", "ok") != "ok" or metric not in t.get("metrics", {}):
            continue
        row = {
            "method": t["variant"],
            "dataset": t["dataset"],
            "seed": t["seed"],
            "score": t["metrics"][metric],
        }
        truth = (labels or {}).get(t["dataset"])
        if truth is not None and t.get("predictions") is not None:
            row["correct"] = (np.asarray(t["predictions"]) == np.asarray(truth)).astype(int).tolist()
        rows.append(row)
    return rows


# --- one comparison ------------------------------------------------------------------------------------


def _design(requested: str, has_correct: bool, n_runs: int, run_column: str, where: str) -> Design:
    if requested == "auto":
        if has_correct and n_runs == 1:
            return "per_sample"
        return "folds" if run_column == "fold" else "seeds"
    if requested == "per_sample":
        if not has_correct:
            raise ConfigError(f"{where}: design 'per_sample' needs a `correct` column for both methods")
        if n_runs != 1:
            raise ConfigError(
                f"{where}: design 'per_sample' compares one run per method; got {n_runs} runs. Per-sample "
                "results of several seeds cannot be pooled: use design 'seeds'"
            )
    if requested not in ("per_sample", "folds", "seeds"):
        raise ConfigError(f"design must be auto, per_sample, folds or seeds; got {requested!r}")
    return requested  # type: ignore[return-value]


def _orient(ci: tuple[float, float], sign: float) -> tuple[float, float]:
    lo, hi = ci[0] * sign, ci[1] * sign
    return (min(lo, hi), max(lo, hi))


def compare_pair(
    variant: dict,
    baseline: dict,
    *,
    dataset: str,
    margin: float,
    alpha: float,
    design: str,
    test: str,
    test_train_ratio: float | None,
    higher_is_better: bool,
    run_column: str,
    power_target: float,
    seed: int,
) -> dict:
    """One variant against the baseline on one dataset. `variant` and `baseline` map run -> row."""
    runs = sorted(set(variant) & set(baseline), key=lambda r: (isinstance(r, str), r))
    where = f"dataset {dataset!r}, {next(iter(variant.values()))['method']!r} vs baseline"
    has_correct = bool(runs) and all(
        variant[r]["correct"] is not None and baseline[r]["correct"] is not None for r in runs
    )
    chosen_design = _design(design, has_correct, len(runs), run_column, where)
    sign = 1.0 if higher_is_better else -1.0
    ratio_note = ""
    if chosen_design == "per_sample":
        a = np.asarray(variant[runs[0]]["correct"], dtype=float)
        b = np.asarray(baseline[runs[0]]["correct"], dtype=float)
        if a.size != b.size:
            raise ConfigError(
                f"{where}: `correct` has {a.size} vs {b.size} samples; they must share a test set"
            )
        sign = 1.0  # correctness: higher is better whatever the score's direction
        spread = float(np.mean(a != b))
    else:
        a = sign * np.array([variant[r]["score"] for r in runs])
        b = sign * np.array([baseline[r]["score"] for r in runs])
        spread = float(np.std(a - b, ddof=1)) if len(runs) > 1 else math.nan
        if chosen_design == "folds" and test_train_ratio is None:
            k = len(runs)
            test_train_ratio = 1 / (k - 1) if k > 1 else None
            ratio_note = f"; n_test/n_train assumed 1/(k-1) = {test_train_ratio:.3g} for k = {k} folds"
    choice = choose_test(
        chosen_design, len(runs), a - b if chosen_design != "per_sample" else None, test, alpha
    )
    # The one paired comparison (stats.paired): its test, the degenerate-data rule, the one-sided p-values
    # at the margin; the verdict is decided again over the whole table by stats.verdict.holm_verdicts.
    result = paired_comparison(
        a,
        b,
        margin,
        alpha,
        test=choice.test,
        test_train_ratio=test_train_ratio,
        seed=seed,
        unit=f"{run_column}s",
    )
    ci = _orient(result.ci, sign)
    reason = result.reason
    if choice.test == "paired_t":
        eq = tost_paired(a, b, margin, alpha)
        equivalence = {"verdict": eq["verdict"], "p_value": eq["p_value"], "method": eq["test"]}
    else:
        wide = run_test(choice.test, a, b, 2 * alpha, test_train_ratio, seed).ci
        equivalence = {
            "verdict": equivalence_from_ci(wide, margin),
            "p_value": None,
            "method": f"(1 - 2 alpha) CI of {choice.test} inside +-margin",
            "ci": list(_orient(wide, sign)),
        }
    if reason is not None:
        equivalence = {**equivalence, "verdict": "not equivalent", "p_value": None, "reason": reason}
    verdict = result.verdict
    n_power = len(a) if chosen_design == "per_sample" else len(runs)
    power = power_info(choice.test, n_power, margin, spread, alpha, power_target, test_train_ratio)
    # An inconclusive verdict (the CI straddles -margin: "no difference shown, none excluded") is what an
    # underpowered design produces by default; say so, and how big the design would need to be. The other
    # verdicts are claims that the data did support, whatever the power.
    if verdict == "inconclusive" and power["underpowered"]:
        need = (
            f"about {power['n_needed']} {power['unit']}"
            if power["n_needed"]
            else "more data than any size here"
        )
        power["warning"] = (
            f"{verdict} with power {power['power']} to detect the "
            f"margin {margin:g}: the design is underpowered; {need} would reach {power_target:.0%} power"
        )
    discordant = int(np.sum(a != b)) if chosen_design == "per_sample" else None
    accuracies = None
    if chosen_design == "per_sample":
        # Each model's own accuracy with its Wilson interval, beside the paired difference.
        accuracies = {
            name: {"accuracy": acc, "ci": list(ci)}
            for name, (acc, ci) in (
                (next(iter(variant.values()))["method"], wilson_ci(int(a.sum()), a.size, 1 - alpha)),
                (next(iter(baseline.values()))["method"], wilson_ci(int(b.sum()), b.size, 1 - alpha)),
            )
        }
    return {
        "dataset": dataset,
        "variant": next(iter(variant.values()))["method"],
        "baseline": next(iter(baseline.values()))["method"],
        "metric": "accuracy (per-sample correctness)" if chosen_design == "per_sample" else "score",
        "design": chosen_design,
        "runs": runs,
        "n": result.n,
        "discordant": discordant,
        "accuracies": accuracies,
        "delta": result.delta * sign,
        "ci": list(ci),
        "ci_method": result.ci_method,
        "confidence": 1 - alpha,
        "test": choice.test,
        "test_reason": choice.reason + ratio_note,
        "test_overridden": choice.overridden,
        "test_detail": result.detail,
        "test_train_ratio": test_train_ratio if choice.test == "nadeau_bengio" else None,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "margin": margin,
        "alpha": alpha,
        "verdict": verdict,
        "equivalence": equivalence,
        "effect_size": result.effect_size * (sign if result.effect_size_name == "cohen_dz" else 1.0),
        "effect_size_name": result.effect_size_name,
        "power": power,
        "inconclusive_reason": reason,
        **result.pvalues(),
    }


# --- the whole table -----------------------------------------------------------------------------------


def compare_scores(
    table: str | Path | Sequence[dict],
    baseline: str | None = None,
    *,
    margin: float = 0.01,
    alpha: float = 0.05,
    design: str = "auto",
    test: str = "auto",
    test_train_ratio: float | None = None,
    higher_is_better: bool = True,
    posthoc: str = "auto",
    power_target: float = 0.8,
    seed: int = 0,
) -> dict:
    """Compare every method with `baseline` on every dataset, rank the methods across datasets, and list
    the pitfalls. `table` is a CSV path or a list of dict rows (see the module docstring).

    baseline: defaults to the first method of the table (with a warning among the pitfalls).
    design:   auto | per_sample | folds | seeds; auto reads it from the table (see choose_test).
    test:     auto, or a test name to override the choice (the reason records both).
    margin:   the non-inferiority and equivalence margin, in the score's units.
    Returns {"baseline", "settings", "comparisons", "ranking", "pitfalls"}, JSON-able."""
    if isinstance(table, (str, Path)):
        rows = load_scores(table)
        source, error = str(table), DataFileError
    else:
        rows, source, error = list(table), "table", ConfigError
    if not margin >= 0:
        raise ConfigError(f"margin must be a non-negative number; got {margin}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1); got {alpha}")
    first_line = 2 if error is DataFileError else 1
    normalized, run_column = _normalize(rows, source, error, first_line)
    methods = list(dict.fromkeys(r["method"] for r in normalized))
    datasets = list(dict.fromkeys(r["dataset"] for r in normalized))
    pitfalls = []
    if baseline is None:
        baseline = methods[0]
        pitfalls.append(
            checks.record(
                "baseline variant",
                "5.2",
                "warn",
                f"no baseline named; the first method, {baseline!r}, is used",
            )
        )
    elif baseline not in methods:
        raise ConfigError(f"baseline {baseline!r} is not in the table; methods: {', '.join(methods)}")
    else:
        pitfalls.append(checks.baseline_variant_check(methods, baseline))

    by: dict[tuple[str, str], dict] = defaultdict(dict)
    for r in normalized:
        by[(r["dataset"], r["method"])][r["run"]] = r
    comparisons, unpaired = [], []
    for dataset in datasets:
        if (dataset, baseline) not in by:
            pitfalls.append(
                checks.record(
                    "baseline variant",
                    "5.2",
                    "fail",
                    f"dataset {dataset!r} has no runs of baseline {baseline!r}",
                )
            )
            continue
        base = by[(dataset, baseline)]
        for method in methods:
            if method == baseline or (dataset, method) not in by:
                continue
            var = by[(dataset, method)]
            dropped = set(var) ^ set(base)
            if dropped:
                unpaired.append(f"{dataset}/{method}: {len(dropped)} runs without a partner")
            if not set(var) & set(base):
                continue
            comparisons.append(
                compare_pair(
                    var,
                    base,
                    dataset=dataset,
                    margin=margin,
                    alpha=alpha,
                    design=design,
                    test=test,
                    test_train_ratio=test_train_ratio,
                    higher_is_better=higher_is_better,
                    run_column=run_column,
                    power_target=power_target,
                    seed=seed,
                )
            )
    two_sided = [c["p_value"] if not c["inconclusive_reason"] else 1.0 for c in comparisons]
    for c, p in zip(comparisons, holm(two_sided), strict=True):
        c["p_adjusted"] = p
        c["correction"] = "holm"
        c["significant"] = bool(p < alpha) if not math.isnan(p) else False
        if c["inconclusive_reason"]:
            c["p_value"] = None  # the data cannot give one (see inconclusive_reason)
    holm_verdicts(comparisons, alpha)

    pitfalls += _table_pitfalls(comparisons, unpaired, alpha)
    ranking = _ranking(by, methods, datasets, alpha, posthoc, higher_is_better)
    if ranking.get("n_datasets", 0) >= 2 and ranking["n_datasets"] < 5:
        pitfalls.append(
            checks.record(
                "datasets for the ranking",
                "5.3",
                "warn",
                f"{ranking['n_datasets']} datasets: the Friedman test and its post-hoc tests have little "
                "power with fewer than 5 (Demšar 2006 works with 10 or more)",
            )
        )
    return _jsonable(
        {
            "baseline": baseline,
            "settings": {
                "margin": margin,
                "alpha": alpha,
                "design": design,
                "test": test,
                "higher_is_better": higher_is_better,
                "power_target": power_target,
                "seed": seed,
                "source": source,
            },
            "comparisons": comparisons,
            "ranking": ranking,
            "pitfalls": pitfalls,
        }
    )


def _table_pitfalls(comparisons: list[dict], unpaired: list[str], alpha: float) -> list[dict]:
    out = []
    runs_checks = [
        checks.seeds_check(
            c["test"],
            c["discordant"] if c["test"] == "mcnemar_exact" else c["n"],
            alpha,
            what=f"{c['dataset']}/{c['variant']}",
        )
        for c in comparisons
    ]
    for status in ("fail", "warn"):
        flagged = [r for r in runs_checks if r["status"] == status]
        if flagged:
            # One line per status, not one per comparison: the table can hold hundreds of them.
            more = f" (and {len(flagged) - 1} more comparisons like it)" if len(flagged) > 1 else ""
            out.append({**flagged[0], "detail": flagged[0]["detail"] + more})
    if runs_checks and all(r["status"] == "pass" for r in runs_checks):
        fewest = min(runs_checks, key=lambda r: r["values"]["n"])
        out.append(
            {**fewest, "detail": f"every comparison has enough runs for its test; fewest: {fewest['detail']}"}
        )
    if unpaired:
        out.append(
            checks.record(
                "paired runs",
                "5.1",
                "warn",
                "runs without a partner in the baseline were left out: " + "; ".join(unpaired[:3]),
            )
        )
    if comparisons:
        out.append(
            checks.record(
                "multiple comparisons",
                "5.4",
                "pass",
                f"p-values are Holm-adjusted across all {len(comparisons)} comparisons (p_adjusted)",
            )
        )
        out.append(
            checks.record(
                "effect sizes and intervals",
                "6.4",
                "pass",
                "every comparison reports its difference with a CI and an effect size",
            )
        )
    weak = [c for c in comparisons if "warning" in c["power"]]
    if weak:
        names = ", ".join(
            f"{c['dataset']}/{c['variant']} ({c['power']['n_needed'] or 'no feasible number of'} "
            f"{c['power']['unit']} needed)"
            for c in weak[:4]
        )
        more = f" and {len(weak) - 4} more" if len(weak) > 4 else ""
        out.append(
            checks.record(
                "power to detect the margin",
                "4.4",
                "warn",
                f"{len(weak)} inconclusive verdicts come from underpowered designs: {names}{more}; "
                f"e.g. {weak[0]['power']['warning']}",
            )
        )
    return out


def _ranking(
    by: dict, methods: list[str], datasets: list[str], alpha: float, posthoc: str, higher_is_better: bool
) -> dict:
    """Rank the methods on the datasets where all of them have scores (mean over runs)."""
    complete = [d for d in datasets if all((d, m) in by for m in methods)]
    if len(methods) < 2 or not complete:
        return {"note": "ranking needs at least two methods scored on a common dataset"}
    scores = np.array(
        [[np.mean([r["score"] for r in by[(d, m)].values()]) for m in methods] for d in complete]
    )
    if len(complete) < 2:
        # Ranks over one dataset are just the order of the means; there is nothing to test across datasets.
        ranks = average_ranks(scores, higher_is_better)
        return {
            "methods": methods,
            "n_datasets": 1,
            "datasets": complete,
            "average_ranks": {m: float(r) for m, r in zip(methods, ranks, strict=True)},
            "order": [methods[i] for i in np.argsort(ranks, kind="stable")],
            "note": "one dataset: the ranking across datasets (Friedman, post hoc, CD) needs at least two",
        }
    out = rank_methods(scores, methods, alpha, posthoc, higher_is_better)
    out["datasets"] = complete
    left_out = [d for d in datasets if d not in complete]
    notes = []
    if left_out:
        notes.append(f"datasets without every method were left out: {', '.join(left_out)}")
    if math.isnan(out["friedman_p"]):
        notes.append("the Friedman test needs at least 3 methods and 2 datasets")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def _jsonable(value: object) -> object:
    """NaN and inf become None, numpy scalars become Python numbers: results.json must be strict JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
