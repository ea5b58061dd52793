"""The `slimlab` command line. User errors print one line and exit 2; failed trials exit 1."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from slimlab.errors import DataFileError, SlimlabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Make models smaller, faster and cheaper, and show that they are no worse.",
)
# Off a terminal (CI logs, pipes) rich assumes 80 columns, which folds the results table; use a wide one.
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
RUN_FILE = "run.json"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _pct(v: float | None) -> str:
    return "–" if v is None or v != v else f"{100 * v:.1f}"


def print_summary(results: dict) -> None:
    comparisons = {(c["dataset"], c["variant"]): c for c in results["comparisons"]}
    for dataset in dict.fromkeys(r["dataset"] for r in results["summary"]):
        table = Table(title=f"{results['experiment']['name']} · {dataset}", title_justify="left")
        for col in (
            "variant",
            "seeds",
            "acc %",
            "95% CI",
            "Δ pts",
            "CI of Δ",
            "p (Holm)",
            "verdict",
            "p50 ms",
            "speedup",
            "nonzero",
        ):
            table.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
        for r in (r for r in results["summary"] if r["dataset"] == dataset):
            c = comparisons.get((dataset, r["variant"]))
            lo, hi = r["accuracy"]["ci"]
            star = " *" if r["variant"] in results["pareto_by_dataset"].get(dataset, []) else ""
            table.add_row(
                r["variant"] + star,
                str(r["n_ok"]),
                _pct(r["accuracy"]["mean"]),
                f"[{_pct(lo)}, {_pct(hi)}]",
                _pct(c["delta"]) if c else "",
                f"[{_pct(c['ci'][0])}, {_pct(c['ci'][1])}]" if c else "",
                ("<0.001" if (c["p_adjusted"] or 1) < 1e-3 else f"{c['p_adjusted']:.3f}")
                if c and c["p_adjusted"] is not None
                else "",
                c["verdict"] if c else "baseline",
                f"{r['latency_p50_ms']:.4f}" if r["latency_p50_ms"] is not None else "–",
                f"{c['speedup']:.2f}x" if c and c["speedup"] else "",
                f"{r['nonzero_params'] / r['params']:.0%}" if r["params"] else "–",
            )
        console.print(table)
    console.print("* on the accuracy/latency Pareto front", style="dim")


def _run(config_path: Path, out: Path | None, quick: bool) -> None:
    from slimlab.bench import environment
    from slimlab.config import load_experiment
    from slimlab.experiment import run_experiment
    from slimlab.experiment.progress import RichProgress
    from slimlab.report import build_results, write_outputs

    try:
        config = load_experiment(config_path)
    except SlimlabError as e:
        raise _fail(str(e)) from None
    if quick:
        config = config.quick()
    out = out or Path("runs") / config.name
    out.mkdir(parents=True, exist_ok=True)
    resolved = config.to_dict()
    env = environment()
    (out / RUN_FILE).write_text(json.dumps({"config": resolved, "environment": env}, indent=1))
    try:
        trials = run_experiment(config, out, RichProgress(console))
    except SlimlabError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise _fail(f"interrupted; finished trials are kept in {out / 'trials.jsonl'}", 130) from None
    results = build_results(resolved, trials, env)
    results_path, report_path = write_outputs(results, out)
    print_summary(results)
    failed = [t for t in trials if t["status"] != "ok"]
    console.print(f"results: {results_path}\nreport:  {report_path}")
    if failed:
        for t in failed:
            err_console.print(
                f"failed: {t['variant']} seed {t['seed']} on {t['dataset']}: {t['error']}",
                highlight=False,
                markup=False,
            )
        raise _fail(f"{len(failed)} of {len(trials)} trials failed; the rest are in the report", 1)


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="experiment file (TOML)")],
    out: Annotated[Path | None, typer.Option(help="run directory; default runs/NAME")] = None,
    quick: Annotated[bool, typer.Option(help="smoke test: 2 seeds, 3 epochs, 1000 samples")] = False,
) -> None:
    """Run an experiment grid (variants × seeds × datasets) and write results.json and report.html."""
    _run(experiment, out, quick)


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="run directory; default runs/quickstart")] = None,
    quick: Annotated[bool, typer.Option(help="smoke test: 2 seeds, 3 epochs, 1000 samples")] = False,
) -> None:
    """Run the bundled quickstart: a 1D CNN on MNIST-1D, dense vs pruned vs int8, 5 seeds."""
    with resources.as_file(resources.files("slimlab") / "examples" / "quickstart.toml") as path:
        _run(path, out, quick)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory written by `slimlab run`")]) -> None:
    """Rebuild results.json and report.html from a run directory's trial records."""
    from slimlab.experiment import load_trials
    from slimlab.report import build_results, write_outputs

    try:
        run_file = run_dir / RUN_FILE
        if not run_file.is_file():
            raise DataFileError(f"{run_file}: not found; is {run_dir} a run directory?")
        try:
            meta = json.loads(run_file.read_text(encoding="utf-8"))
            trials = load_trials(run_dir)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataFileError(f"{run_dir}: a run file is corrupt ({e})") from None
        except FileNotFoundError as e:
            raise DataFileError(f"{e.filename}: not found") from None
    except SlimlabError as e:
        raise _fail(str(e)) from None
    results = build_results(meta["config"], trials, meta["environment"])
    results_path, report_path = write_outputs(results, run_dir)
    print_summary(results)
    console.print(f"results: {results_path}\nreport:  {report_path}")


def main() -> None:  # pragma: no cover
    sys.exit(app())
