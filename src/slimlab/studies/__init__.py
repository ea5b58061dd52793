"""Science studies: reproductions of a paper's claims from slimlab's own parts, run from one TOML file.

A study file has `kind = "study"`, a `name`, and a `[study]` table whose `type` picks the study:

    kind = "study"
    name = "deep_bootstrap"
    [study]
    type = "deep_bootstrap"      # or "switch_moe"
    seeds = 3

`slimlab run FILE.toml [--out DIR] [--quick]` runs it. Each training run (a *cell*) is stored as it
finishes, so rerunning the same command resumes. This package runs cells; `slimlab.analysis.studies`
turns them into results.json (the config, the environment, every cell's curves and the study's analysis
with the paper's claims checked) and `slimlab.report.studies` renders DIR/report.html.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimlab.errors import ConfigError, DataFileError
from slimlab.registry import Registry
from slimlab.studies import deep_bootstrap, switch_moe
from slimlab.studies.common import CellStore, MissingCell, Progress

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# Study type -> its runner (cells in, records out). Its analysis is registered under the same name in
# slimlab.analysis.studies, its figures in slimlab.report.studies.
STUDIES: Registry[Callable[[Any, CellStore, Progress], list[dict]]] = Registry("study")
STUDIES.register("deep_bootstrap", deep_bootstrap.run, description="Real World against Ideal World")
STUDIES.register("switch_moe", switch_moe.run, description="Switch mixture-of-experts against dense")


class StudyFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["study"]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    threads: int = Field(
        default=1,
        ge=1,
        description="torch threads; 1 by default: these models are small, and more threads on a shared "
        "machine mostly add contention",
    )
    study: Annotated[
        deep_bootstrap.DeepBootstrapConfig | switch_moe.SwitchMoEConfig, Field(discriminator="type")
    ]

    def quick(self) -> StudyFile:
        return self.model_copy(update={"study": self.study.quick()})

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def is_study(path: Path) -> bool:
    """Whether an experiment file is a study (`kind = "study"`); unreadable files are left to the loader
    of ordinary experiments, which reports them."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get("kind") == "study"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def _describe(error: ValidationError, raw: dict, source: str) -> str:
    """One line naming the first bad field, as for experiment files; the study's `type` tag that pydantic
    puts into the location is left out (`study.steps`, not `study.deep_bootstrap.steps`)."""
    err = error.errors()[0]
    loc = list(err["loc"])
    if len(loc) > 1 and loc[0] == "study" and loc[1] in STUDIES:
        del loc[1]
    where = ".".join(str(p) for p in loc) or "study"
    if err["type"] == "extra_forbidden":
        model = StudyFile if len(loc) == 1 else _CONFIGS.get(str((raw.get("study") or {}).get("type")))
        known = f"; known keys: {', '.join(model.model_fields)}" if model and len(loc) <= 2 else ""
        return f"{source}: unknown key `{where}`{known}"
    if err["type"] == "missing":
        return f"{source}: missing required key `{where}`"
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        got = (raw.get("study") or {}).get("type") if isinstance(raw.get("study"), dict) else raw.get("study")
        return f"{source}: `study.type` must be one of {', '.join(STUDIES.names())}; got {got!r}"
    message = err["msg"].removeprefix("Value error, ")
    return f"{source}: `{where}`: {message}; got {err.get('input')!r}"


_CONFIGS = {"deep_bootstrap": deep_bootstrap.DeepBootstrapConfig, "switch_moe": switch_moe.SwitchMoEConfig}


def parse_study(raw: dict, source: str = "config") -> StudyFile:
    try:
        return StudyFile.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(e, raw, source)) from None


def load_study(path: str | Path) -> StudyFile:
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: study file not found (expected a TOML file)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    return parse_study(raw, source=path.name)


STUDY_FILE = "study.json"  # the resolved study config, written when a run starts: `slimlab report` reads it


def is_study_dir(path: Path) -> bool:
    return (Path(path) / STUDY_FILE).is_file()


def replay_study(out: str | Path) -> tuple[StudyFile, list[dict], int]:
    """(the study in OUT, the records of its finished seeds, how many seeds were asked for), trains
    nothing. A study stopped part-way gives its first k complete seeds (the runners go seed by seed)."""
    out = Path(out)
    path = out / STUDY_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataFileError(f"{path}: not a readable study config ({e})") from None
    study = parse_study(raw, source=str(path))
    run = STUDIES.get(study.study.type, where="study.type")
    store = CellStore(out, study.to_dict()["study"], read_only=True)
    asked = study.study.seeds
    for seeds in range(asked, 0, -1):
        shorter = study.model_copy(update={"study": study.study.model_copy(update={"seeds": seeds})})
        try:
            return shorter, run(shorter.study, store, lambda _: None), asked
        except MissingCell:
            continue
    raise DataFileError(
        f"{out}: no seed of the study has finished; run `slimlab run` on its file to start it"
    )


def run_study(study: StudyFile, out: str | Path, progress: Progress | None = None) -> list[dict]:
    """Run (or resume) a study: every cell's record, each stored in OUT/cells/ as it finishes. The caller
    analyses them (`slimlab.analysis.studies.analyze_study`) and renders the report
    (`slimlab.report.studies.write_study_outputs`), as `slimlab run` does."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataFileError(f"{out}: cannot create the output folder ({e.strerror})") from None
    run = STUDIES.get(study.study.type, where="study.type")
    store = CellStore(out, study.to_dict()["study"])
    (out / STUDY_FILE).write_text(json.dumps(study.to_dict(), indent=2), encoding="utf-8")
    threads = torch.get_num_threads()
    torch.set_num_threads(study.threads)
    try:
        return run(study.study, store, progress or (lambda _: None))
    finally:
        torch.set_num_threads(threads)
