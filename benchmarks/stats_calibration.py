"""Calibration of slimlab's statistical tests: rejection rate under H0 and power against a known effect.

    PYTHONPATH=src python benchmarks/stats_calibration.py [--sims 5000] [--seed 0]

Prints a markdown table for BENCHMARKS.md. Each row simulates `--sims` comparisons of the design the
test is meant for (slimlab.stats.calibration) and counts rejections at alpha = 0.05. The interval is the
Wilson 95% interval of the rate. "theory" is the power that the closed-form or approximate formula in
slimlab.stats.power predicts for the same effect.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import scipy
import statsmodels

from slimlab.stats import wilson_ci
from slimlab.stats.calibration import N_FOLDS, N_SEEDS, N_TEST, P_DISCORDANT, SCENARIOS, SD, rejection_rate
from slimlab.stats.power import mcnemar_power, nadeau_bengio_power, paired_t_power

# The effect at which power is measured, per scenario (in the scenario's own effect unit).
EFFECTS = {
    "paired_t": 1.0,
    "wilcoxon": 1.0,
    "permutation": 1.0,
    "auto (choose_test)": 1.0,
    "nadeau_bengio": 1.5,
    "paired_t on folds (wrong test)": 1.5,
    "mcnemar_exact": 0.3,
    "friedman": 1.5,
    "iman_davenport": 1.5,
    "nemenyi (any pair, FWER)": 1.5,
    "wilcoxon_holm (any pair, FWER)": 1.5,
}


def theory(name: str, effect: float) -> float | None:
    if name == "paired_t":
        return paired_t_power(N_SEEDS, effect)
    if name in ("wilcoxon", "permutation", "auto (choose_test)"):
        return (
            paired_t_power(N_SEEDS * 3 / math.pi, effect)
            if name == "wilcoxon"
            else paired_t_power(N_SEEDS, effect)
        )
    if name == "nadeau_bengio":
        return nadeau_bengio_power(N_FOLDS, effect * SD, math.sqrt(1 - 1 / N_FOLDS) * SD, 1 / (N_FOLDS - 1))
    if name == "mcnemar_exact":
        return mcnemar_power(N_TEST, effect * P_DISCORDANT, P_DISCORDANT)
    return None


def rate(name: str, sims: int, effect: float, seed: int) -> tuple[float, tuple[float, float]]:
    r = rejection_rate(name, sims, effect, seed)
    return wilson_ci(round(r * sims), sims)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"Calibration at alpha = 0.05, {args.sims} simulated comparisons per cell, seed {args.seed} "
        f"(python {platform.python_version()}, scipy {scipy.__version__}, "
        f"statsmodels {statsmodels.__version__}).\n"
    )
    print(
        "| test | design | rejection rate under H0 [95% CI] | in [0.035, 0.065] | effect | power [95% CI] "
        "| theory | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in SCENARIOS:
        start = time.perf_counter()
        h0, (h0_lo, h0_hi) = rate(s.name, args.sims, 0.0, args.seed)
        effect = EFFECTS[s.name]
        pw, (pw_lo, pw_hi) = rate(s.name, args.sims, effect, args.seed + 1)
        expected = theory(s.name, effect)
        if "FWER" in s.name:  # Holm and Nemenyi bound the family-wise rate: at most alpha, not alpha
            ok = "yes (FWER <= 0.065)" if h0 <= 0.065 else "no (FWER above alpha)"
        elif "wrong test" in s.name:  # shown to make the point: the naive test is too liberal on folds
            ok = "no, as expected" if h0 > 0.065 else "yes (unexpected)"
        else:
            ok = "yes" if 0.035 <= h0 <= 0.065 else "no"
        print(
            f"| {s.name} | {s.design} | {h0:.4f} [{h0_lo:.4f}, {h0_hi:.4f}] | {ok} | {effect:g} ({s.effect}) "
            f"| {pw:.3f} [{pw_lo:.3f}, {pw_hi:.3f}] | {'' if expected is None else f'{expected:.3f}'} "
            f"| {time.perf_counter() - start:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
