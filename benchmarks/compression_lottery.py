"""The lottery-ticket table, verdicts and figure for BENCHMARKS.md, from a finished run directory.

    slimlab run examples/lottery_ticket.toml --out runs/lottery_mlp
    PYTHONPATH=src python benchmarks/compression_lottery.py runs/lottery_mlp [--png lottery_mlp.png]

Prints a markdown table (mean test accuracy with a 95% t-CI over seeds per arm and round), one line per arm
saying down to which fraction of weights it matches dense and from which it is shown to be worse (the
margin is the experiment's `evaluate.margin`), and writes the accuracy-vs-weights-remaining plot.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

from slimlab.analysis.lottery import lottery_summary
from slimlab.experiment.runner import load_run
from slimlab.report.lottery import lottery_markdown, lottery_plot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--png", type=Path, default=None, help="default: RUN_DIR/lottery.png")
    args = parser.parse_args()
    config, _, trials = load_run(args.run_dir)
    if not trials:
        raise SystemExit(f"no trials in {args.run_dir}")
    margin, confidence = config.evaluate.margin, 1 - config.evaluate.alpha
    summary = lottery_summary(trials, margin=margin, confidence=confidence)
    print(lottery_markdown(summary))
    title = f"{config.name}: {config.model.name}"
    png = lottery_plot(summary, title=title, confidence=confidence)
    if png:
        out = args.png or args.run_dir / "lottery.png"
        out.write_bytes(base64.b64decode(png["png"]))
        print(f"\nfigure: {out}")


if __name__ == "__main__":
    main()
