"""Learning curves: accuracy against the number of training examples, with intervals, and each recipe's
data multiplier, the number of scratch examples that give the recipe's accuracy, divided by its own n.

The scratch curve is made monotone (isotonic regression in log n: more data should not hurt, so a dip is
noise) and inverted by linear interpolation in log n. A recipe that beats scratch at the largest n has a
multiplier that the sweep cannot measure: it is reported as a lower bound (`censored = "above"`), and one
worse than scratch at the smallest n as an upper bound (`"below"`). The interval is a percentile
bootstrap over seeds: a resample draws seeds with replacement, and because a seed fixes the training
subset of every recipe, the recipe and scratch means of one resample use the same seeds (paired).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from slimlab.stats.intervals import mean_ci

Curve = Mapping[int, Mapping[int, float]]  # n -> seed -> accuracy


def curve_points(curve: Curve, confidence: float = 0.95) -> list[dict]:
    """[{n, seeds, mean, ci: [lo, hi]}] per n, the t interval over seeds, clipped to [0, 1]."""
    out = []
    for n in sorted(curve):
        values = list(curve[n].values())
        if len(values) >= 2:
            mean, (lo, hi) = mean_ci(values, confidence)
            ci = [max(0.0, float(lo)), min(1.0, float(hi))]
        else:
            mean, ci = float(values[0]), [None, None]
        out.append({"n": n, "seeds": len(values), "mean": float(mean), "ci": ci})
    return out


def _monotone(means: np.ndarray) -> np.ndarray:
    """The closest non-decreasing curve (least squares; the sizes are sorted). scipy's PAVA runs in about
    70 µs here against 12 ms for scikit-learn's estimator, which matters inside a 2,000-resample bootstrap."""
    from scipy.optimize import isotonic_regression

    return isotonic_regression(means, increasing=True).x


def equivalent_n(log_n: np.ndarray, monotone: np.ndarray, accuracy: float) -> tuple[float, str | None]:
    """The n at which the (monotone) scratch curve reaches `accuracy`, interpolated in log n; outside the
    sweep, the nearest end with the side it is censored on."""
    if accuracy > monotone[-1]:
        return float(np.exp(log_n[-1])), "above"
    if accuracy < monotone[0]:
        return float(np.exp(log_n[0])), "below"
    # The first point that reaches the accuracy; on a flat stretch the smallest n (the conservative end).
    i = int(np.argmax(monotone >= accuracy))
    if i == 0 or monotone[i] == monotone[i - 1]:
        return float(np.exp(log_n[i])), None
    t = (accuracy - monotone[i - 1]) / (monotone[i] - monotone[i - 1])
    return float(np.exp(log_n[i - 1] + t * (log_n[i] - log_n[i - 1]))), None


def _multipliers(
    sizes: np.ndarray, scratch: np.ndarray, recipe: np.ndarray
) -> list[tuple[float, str | None]]:
    log_n = np.log(sizes)
    monotone = _monotone(scratch)
    return [
        (n_eq / n, side)
        for n, acc in zip(sizes, recipe, strict=True)
        for n_eq, side in [equivalent_n(log_n, monotone, acc)]
    ]


def data_multipliers(
    scratch: Curve,
    recipe: Curve,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """Per n that both curves have: {n, multiplier, ci: [lo, hi], censored, ci_censored: [lo?, hi?]}.
    The multiplier is n_scratch(recipe's mean accuracy) / n."""
    sizes = np.array(sorted(set(scratch) & set(recipe)))
    if len(sizes) < 2:
        return []
    seeds = sorted(set.intersection(*(set(scratch[n]) & set(recipe[n]) for n in sizes)))
    if not seeds:
        return []
    s = np.array([[scratch[n][k] for k in seeds] for n in sizes])  # (sizes, seeds)
    r = np.array([[recipe[n][k] for k in seeds] for n in sizes])
    point = _multipliers(sizes, s.mean(1), r.mean(1))
    rng = np.random.default_rng(seed)
    boot = np.empty((resamples, len(sizes)))
    sides = np.empty((resamples, len(sizes)), dtype=object)
    for b in range(resamples):
        pick = rng.integers(0, len(seeds), len(seeds))
        for j, (m, side) in enumerate(_multipliers(sizes, s[:, pick].mean(1), r[:, pick].mean(1))):
            boot[b, j], sides[b, j] = m, side
    alpha = 1 - confidence
    out = []
    for j, n in enumerate(sizes):
        lo, hi = np.quantile(boot[:, j], [alpha / 2, 1 - alpha / 2])
        # An end of the interval that sits on a censored bound is a bound, not a value.
        lo_side = "below" if np.mean(sides[:, j] == "below") > alpha / 2 else None
        hi_side = "above" if np.mean(sides[:, j] == "above") > alpha / 2 else None
        out.append(
            {
                "n": int(n),
                "seeds": len(seeds),
                "multiplier": float(point[j][0]),
                "censored": point[j][1],
                "ci": [float(lo), float(hi)],
                "ci_censored": [lo_side, hi_side],
            }
        )
    return out


def format_multiplier(row: Mapping) -> str:
    """`2.3x [1.6, 3.1]`, with `>=`/`<=` where the sweep only bounds it."""
    sign = {"above": "≥", "below": "≤", None: ""}
    lo_side, hi_side = row["ci_censored"]
    lo = f"{'≤' if lo_side else ''}{row['ci'][0]:.2g}"
    hi = f"{'≥' if hi_side else ''}{row['ci'][1]:.2g}"
    return f"{sign[row['censored']]}{row['multiplier']:.2g}x [{lo}, {hi}]"


def curve_table(curves: Mapping[str, Curve], baseline: str, **kwargs) -> list[dict]:
    """Rows {recipe, n, seeds, mean, ci, delta (vs baseline, same seeds), multiplier...} for a report."""
    confidence = kwargs.get("confidence", 0.95)
    rows = []
    for recipe, curve in curves.items():
        mults = {
            m["n"]: m
            for m in (data_multipliers(curves[baseline], curve, **kwargs) if recipe != baseline else [])
        }
        for point in curve_points(curve, confidence):
            n = point["n"]
            base = curves[baseline].get(n, {})
            paired = [curve[n][k] - base[k] for k in curve[n] if k in base]
            delta = float(np.mean(paired)) if paired and recipe != baseline else None
            rows.append({"recipe": recipe, **point, "delta": delta, "multiplier": mults.get(n)})
    return rows
