"""Statistics on any table of scores: intervals, paired tests, corrections, verdicts."""

from slimlab.stats.intervals import mean_ci
from slimlab.stats.paired import PairedComparison, holm, paired_comparison, verdict_from_ci

__all__ = ["PairedComparison", "holm", "mean_ci", "paired_comparison", "verdict_from_ci"]
