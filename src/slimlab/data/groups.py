"""Group labels per sample, as the user defines them: any column (caste, religion, region, language, device
type, ...), a mapping file that merges raw values into groups, and intersections such as "sex×race".

Groups are strings. A missing raw value becomes the group "unknown", so that a population the data records
badly stays visible instead of being dropped (Sambasivan et al., FAccT 2021: missing populations).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from slimlab.errors import ConfigError, DataFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UNKNOWN = "unknown"
# "sex×race", "sex*race" and "sex x race" all name the intersection of the columns sex and race.
_INTERSECTION = re.compile(r"\s*(?:×|\*|\s x\s)\s*")

GroupMap = dict[str, dict[str, str]]  # column -> {raw value -> group}


def split_intersection(name: str) -> list[str]:
    parts = [p for p in _INTERSECTION.split(name) if p]
    if len(parts) < 2:
        raise ConfigError(
            f"`data.intersections`: {name!r} is not an intersection; write two or more group names joined "
            "by × or *, e.g. 'sex×race'"
        )
    return parts


def intersection_name(parts: Sequence[str]) -> str:
    return "×".join(parts)


def load_group_map(source: str | Path | Mapping[str, Mapping[str, object]] | None) -> GroupMap:
    """A mapping {column: {raw value: group}} from an inline table or a file:
    TOML or JSON (`{"column": {"raw": "group"}}`), or CSV with the header `column,value,group`."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return _check_map(source, "data.group_map")
    path = Path(source)
    if not path.is_file():
        raise DataFileError(f"{path}: group mapping file not found (data.group_map)")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            raw: object = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text)
        elif suffix == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
            if not rows or not {"column", "value", "group"} <= set(rows[0]):
                raise DataFileError(f"{path}: a CSV group mapping needs the header column,value,group")
            raw = {}
            for row in rows:
                raw.setdefault(row["column"], {})[row["value"]] = row["group"]
        else:
            raise DataFileError(f"{path}: group mapping must be .toml, .json or .csv")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise DataFileError(f"{path}: cannot parse group mapping: {e}") from None
    if not isinstance(raw, Mapping):
        raise DataFileError(f"{path}: group mapping must be a table {{column: {{raw value: group}}}}")
    return _check_map(raw, str(path))


def _check_map(raw: Mapping, where: str) -> GroupMap:
    out: GroupMap = {}
    for column, table in raw.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: entry {column!r} must map raw values to groups")
        out[str(column)] = {str(k): str(v) for k, v in table.items()}
    return out


def _labels(values: pd.Series, mapping: Mapping[str, str]) -> np.ndarray:
    """String labels for one column: missing -> "unknown", mapped values merged, others kept raw."""
    missing = values.isna().to_numpy()
    raw = values.astype(str).str.strip()
    labels = raw.map(lambda v: mapping.get(v, v)).to_numpy(dtype=object)
    labels[missing] = UNKNOWN
    return labels.astype(str)


def build_groups(
    frame: pd.DataFrame,
    columns: Sequence[str],
    group_map: GroupMap | None = None,
    intersections: Sequence[str] = (),
    source: str = "data",
    rename: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """{group name: label per row} for each column in `columns` (renamed by `rename`, e.g. native-country
    -> region) and each intersection of those names. A column named in the mapping but absent from
    `columns` is an error, so that a typo never silently leaves groups unmerged."""
    group_map = group_map or {}
    rename = dict(rename or {})
    for column in [*columns, *group_map]:
        if column not in frame.columns:
            raise DataFileError(
                f"{source}: group column {column!r} not found; columns: {', '.join(map(str, frame.columns))}"
            )
    unused = sorted(set(group_map) - set(columns))
    if unused:
        raise ConfigError(f"`data.group_map` maps column(s) {', '.join(unused)} that are not group columns")
    groups = {rename.get(c, c): _labels(frame[c], group_map.get(c, {})) for c in columns}
    for spec in intersections:
        parts = split_intersection(spec)
        for p in parts:
            if p not in groups:
                raise ConfigError(
                    f"`data.intersections`: {p!r} in {spec!r} is not a group; groups: {', '.join(groups)}"
                )
        joined = groups[parts[0]].astype(object)
        for p in parts[1:]:
            joined = joined + " & " + groups[p].astype(object)
        groups[intersection_name(parts)] = joined.astype(str)
    return groups


def missing_rate_by_group(row_has_missing: np.ndarray, groups: Mapping[str, np.ndarray]) -> dict:
    """{group name: {label: {"n", "missing_rate"}}}: the share of each group's rows with at least one
    missing raw field. Computed on the raw data, before any imputation."""
    out: dict = {}
    for name, labels in groups.items():
        out[name] = {}
        for label in sorted(set(labels.tolist())):
            mask = labels == label
            out[name][label] = {"n": int(mask.sum()), "missing_rate": float(row_has_missing[mask].mean())}
    return out
