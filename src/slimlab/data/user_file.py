"""A user's own table (CSV, TSV, or parquet when pyarrow is installed) with a target column and group
columns. Every problem a user can fix (missing file, missing column, a feature that is not a number)
is one DataFileError line that names the file and the column."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from slimlab.errors import DataFileError


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: data file not found (data.path)")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            if (
                importlib.util.find_spec("pyarrow") is None
                and importlib.util.find_spec("fastparquet") is None
            ):
                raise DataFileError(
                    f"{path}: reading parquet needs pyarrow (pip install pyarrow); or use CSV"
                )
            frame = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")):
            sep = "\t" if ".tsv" in name else ","
            frame = pd.read_csv(path, sep=sep, skipinitialspace=True)
        else:
            raise DataFileError(
                f"{path}: unknown file type; expected .csv, .tsv (optionally .gz) or .parquet"
            )
    except UnicodeDecodeError as e:
        raise DataFileError(
            f"{path}: is not UTF-8 text (byte {e.start}); expected a UTF-8 encoded table"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: the file is empty; expected a header row and data rows") from None
    except (pd.errors.ParserError, OSError, ValueError) as e:
        raise DataFileError(f"{path}: cannot read the table: {type(e).__name__}: {e}") from None
    if frame.empty:
        raise DataFileError(f"{path}: the table has no rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame
