"""Statistics on any table of scores: intervals, paired tests chosen by the design of the data, corrections,
decisions at a margin, power, rankings over datasets, and `compare_scores`, which does all of it."""

from slimlab.stats.choose import ChosenTest, choose_test, min_pairs, run_test
from slimlab.stats.compare import compare_scores, load_scores, rows_from_trials
from slimlab.stats.decisions import equivalence_from_ci, tost_paired
from slimlab.stats.intervals import bootstrap_ci, mean_ci, wilson_ci
from slimlab.stats.paired import PairedComparison, holm, paired_comparison, verdict_from_ci
from slimlab.stats.paired_tests import (
    PairedTestResult,
    mcnemar_exact,
    nadeau_bengio,
    paired_permutation,
    paired_t,
    wilcoxon_signed_rank,
)
from slimlab.stats.power import power_info, seeds_needed
from slimlab.stats.ranking import cd_diagram, figure_to_base64_png, rank_methods

__all__ = [
    "ChosenTest",
    "PairedComparison",
    "PairedTestResult",
    "bootstrap_ci",
    "cd_diagram",
    "choose_test",
    "compare_scores",
    "equivalence_from_ci",
    "figure_to_base64_png",
    "holm",
    "load_scores",
    "mcnemar_exact",
    "mean_ci",
    "min_pairs",
    "nadeau_bengio",
    "paired_comparison",
    "paired_permutation",
    "paired_t",
    "power_info",
    "rank_methods",
    "rows_from_trials",
    "run_test",
    "seeds_needed",
    "tost_paired",
    "verdict_from_ci",
    "wilcoxon_signed_rank",
    "wilson_ci",
]
