"""Reading a table's raw columns from its source: a file, a DuckDB query or a database.

Each source gives its header first, so that the spec is checked against it (unknown
columns with a suggestion, columns without a role) before any value is read, and then
only the columns that have a use: PII and ignored columns of files and database tables
never enter memory. (A query's own ``SELECT`` decides what it reads: leave PII out of
it.) Every failure is a :class:`~features.errors.SpecError` naming the spec key:

- a missing file, with the closest file name in its folder;
- a DuckDB error, with DuckDB's message, at ``spec.tables.<t>.source.sql``;
- a database that cannot be reached, with the URL's password masked and the driver's
  reason (no traceback), at ``spec.tables.<t>.source.url``; a query's error at
  ``...source.query``; a missing table, with the closest table name.

Relative paths (``file:``, paths inside ``sql:``, a ``sqlite:///`` database file)
resolve against the data folder. DuckDB would look in the current directory first, so
a query whose relative path also exists there is refused rather than read from the
wrong place.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from features.errors import SpecError
from features.spec.model import CsvOptions, SourceSpec, TableRead, _suggest

__all__ = ["TableSource", "open_source", "mask_url", "file_sha256"]

_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_SQL_STRING_RE = re.compile(r"'((?:[^']|'')*)'")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_QUERY_KEYS = ("password", "passwd", "secret", "token", "sslpassword")


@dataclass(frozen=True)
class TableSource:
    """A table's source, opened: its header, then the columns asked for.

    ``name`` is how header problems name the table (the file name for version 1,
    e.g. ``tiny.csv``; else the table's key, e.g. ``leads``); ``description`` says
    where the data came from, for the CLI and run metadata, and never holds a password.
    """

    name: str
    description: str
    kind: Literal["file", "sql", "url"]
    path: Path | None
    _reader: Any

    def header(self) -> list[str]:
        return self._reader.header()

    def read(self, columns: Sequence[str], *, numeric: set[str]) -> pd.DataFrame:
        """The named columns, in the source's row order, with ``na_values`` applied."""
        return self._reader.read(list(columns), numeric).reset_index(drop=True)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mask_na_values(frame: pd.DataFrame, na_values: list[str]) -> pd.DataFrame:
    """``na_values`` for non-CSV sources: text cells equal to one become missing (as read_csv does)."""
    if na_values:
        for col in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[col].dtype):
                frame[col] = frame[col].mask(frame[col].isin(na_values))
    return frame


# --------------------------------------------------------------------------- files


class _FileReader:
    def __init__(
        self, origin: str, path: Path, fmt: str, csv: CsvOptions, read: TableRead, key: str
    ) -> None:
        self.origin, self.path, self.fmt, self.csv, self.options, self.key = (
            origin,
            path,
            fmt,
            csv,
            read,
            key,
        )

    def _read_csv(self, **kwargs: Any) -> pd.DataFrame:
        o, c = self.options, self.csv
        try:
            return pd.read_csv(
                self.path,
                sep=c.delimiter,
                encoding=c.encoding,
                quotechar=c.quotechar,
                skiprows=c.skiprows,
                na_values=o.na_values,
                keep_default_na=o.keep_default_na,
                **kwargs,
            )
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise SpecError(
                f"{self.origin}: {self.path.name} cannot be read as CSV with the spec's read "
                f"options ({self.key}): {exc}"
            ) from None

    def header(self) -> list[str]:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                return [str(c) for c in pq.read_schema(self.path).names]
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise SpecError(
                    f"{self.origin}: {self.path.name} cannot be read as parquet: {exc}"
                ) from None
        return [str(c) for c in self._read_csv(nrows=0).columns]

    def read(self, wanted: list[str], numeric: set[str]) -> pd.DataFrame:
        if self.fmt == "parquet":
            # read_csv applies na_values while parsing; do the same for text columns here
            # so that one spec means the same thing for both formats.
            return _mask_na_values(
                pd.read_parquet(self.path, columns=wanted), self.options.na_values
            )
        # Text everywhere except numeric columns, which pandas parses with the
        # decimal/thousands options; a stray word leaves such a column as text and
        # the loader then names the bad value.
        return self._read_csv(
            usecols=wanted,
            dtype={col: "string" for col in wanted if col not in numeric},
            decimal=self.csv.decimal,
            thousands=self.csv.thousands,
        )


def _detect_format(origin: str, path: Path, fmt: str | None, key: str) -> str:
    if fmt is not None:
        return fmt
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise SpecError(
        f"{origin}: {key}: cannot tell the format of {path.name!r} from its "
        "name; set format to 'csv' or 'parquet'"
    )


def missing_tokens(source: SourceSpec, read: TableRead) -> frozenset[str]:
    """The text values a table's loader reads as missing: the spec's ``na_values``, and
    for a CSV file with ``keep_default_na``, pandas' own (``""``, ``NA``, ``null`` ...).
    Parquet, DuckDB and database sources mask only the spec's. A live request's values
    are read by the same rule (``serving.spec_contract``)."""
    tokens = set(read.na_values)
    if source.kind == "file" and read.keep_default_na and source.file is not None:
        name = source.file.lower()
        is_csv = source.format == "csv" or (source.format is None
                                            and name.endswith(_CSV_SUFFIXES))
        if is_csv:
            from pandas._libs.parsers import STR_NA_VALUES

            tokens |= set(STR_NA_VALUES)
    return frozenset(tokens)


def _missing_file(origin: str, key: str, path: Path, data_dir: Path | None) -> SpecError:
    folder = path.parent
    if folder.is_dir():
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
        hint = _suggest(path.name, names)
        where = f"no such file in {str(folder)!r}{hint}"
    else:
        where = f"the folder {str(folder)!r} does not exist"
    return SpecError(
        f"{origin}: {key}: {path.name!r}: {where}; point the spec at its data folder with "
        "--data DIR (or LEADSCORE_SPEC_DATA, or data_dir in the spec)"
    )


# --------------------------------------------------------------------------- DuckDB


def _one_line(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _DuckDBReader:
    def __init__(self, origin: str, sql: str, data_dir: Path, read: TableRead, key: str) -> None:
        self.origin, self.sql, self.data_dir, self.options, self.key = (
            origin,
            sql,
            data_dir,
            read,
            key,
        )
        self._con: Any = None
        self._rel: Any = None

    def _error(self, exc: Exception) -> SpecError:
        message = str(exc).strip()
        hint = ""
        if "No files found" in message or "does not exist" in message:
            hint = f" (relative paths resolve against the data folder {str(self.data_dir)!r})"
        return SpecError(f"{self.origin}: {self.key}: DuckDB: {message}{hint}")

    def _relation(self) -> Any:
        if self._rel is None:
            import duckdb

            self._refuse_shadowed_paths()
            con = duckdb.connect(":memory:")
            folder = str(self.data_dir).replace("'", "''")
            # DuckDB looks up a relative file name in the current directory first, then in
            # file_search_path; _refuse_shadowed_paths makes sure the first finds nothing.
            con.execute(f"SET file_search_path = '{folder}'")
            con.execute("SET TimeZone = 'UTC'")
            try:
                rel = con.sql(self.sql)
            except duckdb.Error as exc:
                con.close()
                raise self._error(exc) from None
            if rel is None:
                con.close()
                raise SpecError(
                    f"{self.origin}: {self.key}: is not a query that returns rows; "
                    "expected a SELECT"
                )
            self._con, self._rel = con, rel
        return self._rel

    def _refuse_shadowed_paths(self) -> None:
        """Refuse a relative path in the query that the current directory also has.

        DuckDB would read the current directory's file rather than the data folder's,
        so the same spec would read different data depending on where it is run from.
        (Changing the process's directory instead would be a side effect on everything
        else running in it.)
        """
        cwd = Path.cwd().resolve()
        if cwd == self.data_dir.resolve():
            return
        for match in _SQL_STRING_RE.finditer(self.sql):
            text = match.group(1).replace("''", "'")
            # Only what looks like a file name: 'Pass' or 'B' in a CASE is not a path.
            if not any(c in text for c in "./*") or "://" in text:
                continue
            if Path(text).is_absolute() or text.startswith("~"):
                continue
            try:
                hits = sorted(p for p in cwd.glob(text) if p.is_file())
            except (ValueError, NotImplementedError, OSError):
                continue
            if hits:
                raise SpecError(
                    f"{self.origin}: {self.key}: {text!r} also exists in the current directory "
                    f"({str(hits[0])!r}), which DuckDB would read instead of the data folder "
                    f"{str(self.data_dir)!r}; run from another directory or write the path "
                    "in full"
                )

    def header(self) -> list[str]:
        return [str(c) for c in self._relation().columns]

    def read(self, wanted: list[str], numeric: set[str]) -> pd.DataFrame:
        import duckdb

        rel = self._relation()
        quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in wanted)
        try:
            frame = rel.project(quoted).df()
        except duckdb.Error as exc:
            raise self._error(exc) from None
        finally:
            self._con.close()
            self._con = self._rel = None
        return _mask_na_values(frame, self.options.na_values)


# --------------------------------------------------------------------------- databases


def mask_url(url: str) -> str:
    """A database URL fit to print: the password (and secret query parameters) masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
    query = {
        k: ("***" if any(s in k.lower() for s in _SECRET_QUERY_KEYS) else v)
        for k, v in parsed.query.items()
    }
    return parsed.set(query=query).render_as_string(hide_password=True)


def _substitute_env(origin: str, key: str, text: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SpecError(
                f"{origin}: {key}: environment variable {name!r} is not set "
                f"(the URL uses ${{{name}}})"
            )
        return os.environ[name]

    return _ENV_RE.sub(value, text)


def _reason(exc: Exception, secrets: Sequence[str]) -> str:
    """The driver's own message (first line), with any secret masked: no SQL, no traceback."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    first = text.splitlines()[0] if text else text
    for secret in secrets:
        if secret:
            first = first.replace(secret, "***")
    return first


class _DatabaseReader:
    def __init__(
        self,
        origin: str,
        source: SourceSpec,
        data_dir: Path | None,
        read: TableRead,
        key: str,
    ) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        self.origin, self.options, self.key = origin, read, key
        assert source.url is not None
        url_text = _substitute_env(origin, f"{key}.url", source.url)
        try:
            url = make_url(url_text)
        except ArgumentError:
            raise SpecError(
                f"{origin}: {key}.url: {mask_url(url_text)!r} is not a database URL; expected "
                "a SQLAlchemy URL such as 'postgresql+psycopg://user:${PGPASSWORD}@host:5432/db'"
            ) from None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            db = Path(url.database).expanduser()
            if not db.is_absolute() and data_dir is not None:
                db = data_dir / db
            if not db.is_file():
                # SQLite would create an empty database rather than fail.
                raise SpecError(
                    f"{origin}: {key}.url: cannot connect to {mask_url(str(url))}: "
                    f"the database file {str(db)!r} does not exist"
                )
            url = url.set(database=str(db))
        self.url = url
        self.secrets = [
            url.password or "",
            *[
                str(v)
                for k, v in url.query.items()
                if any(s in k.lower() for s in _SECRET_QUERY_KEYS)
            ],
        ]
        self.masked = mask_url(url.render_as_string(hide_password=False))
        self.query, self.table = source.query, source.table
        self._engine: Any = None

    def _connect(self) -> Any:
        import sqlalchemy as sa

        if self._engine is None:
            try:
                self._engine = sa.create_engine(self.url)
            except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
                raise SpecError(
                    f"{self.origin}: {self.key}.url: cannot use {self.masked}: "
                    f"{_reason(exc, self.secrets)}"
                ) from None
        try:
            return self._engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise SpecError(
                f"{self.origin}: {self.key}.url: cannot connect to {self.masked}: "
                f"{_reason(exc, self.secrets)}"
            ) from None

    def _split_table(self) -> tuple[str | None, str]:
        assert self.table is not None
        schema, _, name = self.table.rpartition(".")
        return (schema or None), name

    def header(self) -> list[str]:
        import sqlalchemy as sa

        with self._connect() as conn:
            if self.table is not None:
                schema, name = self._split_table()
                inspector = sa.inspect(conn)
                if not inspector.has_table(name, schema=schema):
                    tables = inspector.get_table_names(schema=schema)
                    raise SpecError(
                        f"{self.origin}: {self.key}.table: {self.table!r} is not a table of "
                        f"{self.masked}{_suggest(name, tables)} (tables: {', '.join(tables) or 'none'})"
                    )
                return [str(c["name"]) for c in inspector.get_columns(name, schema=schema)]
            try:
                result = conn.execute(sa.text(f"SELECT * FROM ({self.query}) AS _src WHERE 1 = 0"))
            except sa.exc.SQLAlchemyError as exc:
                raise SpecError(
                    f"{self.origin}: {self.key}.query: {_reason(exc, self.secrets)}"
                ) from None
            names = result.keys()  # a SQLAlchemy RMKeyView, not a dict
            return [str(c) for c in names]

    def read(self, wanted: list[str], numeric: set[str]) -> pd.DataFrame:
        import sqlalchemy as sa

        columns = [sa.column(c) for c in wanted]
        if self.table is not None:
            schema, name = self._split_table()
            stmt = sa.select(*columns).select_from(sa.table(name, schema=schema))
        else:
            src = sa.text(self.query).columns(*columns).subquery("_src")
            stmt = sa.select(*[src.c[c] for c in wanted])
        try:
            with self._connect() as conn:
                frame = pd.read_sql(stmt, conn)
        except sa.exc.SQLAlchemyError as exc:
            key = f"{self.key}.table" if self.table is not None else f"{self.key}.query"
            raise SpecError(f"{self.origin}: {key}: {_reason(exc, self.secrets)}") from None
        finally:
            if self._engine is not None:
                self._engine.dispose()
        return _mask_na_values(frame, self.options.na_values)


# --------------------------------------------------------------------------- opening


def open_table(spec: Any, name: str, data_dir: Path | None) -> TableSource:
    """Open table ``name`` of a version-2 spec (``spec.tables.<name>``) by its key path."""
    table = getattr(spec.tables, name)
    return open_source(table.source, table.read, origin=spec.origin, table=name,
                       key=f"spec.tables.{name}.source", data_dir=data_dir)


def open_source(
    source: SourceSpec,
    read: TableRead,
    *,
    origin: str,
    table: str,
    key: str,
    data_dir: Path | None,
    v1_name: bool = False,
    missing_file_message: str | None = None,
) -> TableSource:
    """Open one table's source (nothing is read yet; DuckDB binds the query).

    Parameters
    ----------
    source, read
        The table's ``source`` and ``read`` sections.
    origin
        How messages name the spec (its file name).
    table
        The table's key (``leads``); version 1 tables are named by their file instead.
    key
        The source's key path, e.g. ``spec.tables.leads.source``.
    data_dir
        The folder relative paths resolve against.
    """
    kind = source.kind
    if kind == "file":
        assert source.file is not None
        path = Path(source.file).expanduser()
        if not path.is_absolute() and data_dir is not None:
            path = data_dir / path
        path = path.resolve()
        file_key = key if v1_name else f"{key}.file"
        if not path.is_file():
            if missing_file_message is not None:
                raise SpecError(missing_file_message.format(path=str(path)))
            raise _missing_file(origin, file_key, path, data_dir)
        fmt_key = "spec.read.format" if v1_name else f"{key}.format"
        fmt = _detect_format(origin, path, source.format, fmt_key)
        csv_key = "spec.read.csv" if v1_name else f"{key}.csv"
        reader: Any = _FileReader(origin, path, fmt, source.csv_options, read, csv_key)
        return TableSource(
            name=path.name if v1_name else table,
            description=f"{fmt} file {path}",
            kind="file",
            path=path,
            _reader=reader,
        )
    if kind == "sql":
        assert source.sql is not None
        folder = (data_dir or Path.cwd()).resolve()
        reader = _DuckDBReader(origin, source.sql, folder, read, f"{key}.sql")
        return TableSource(
            name=table,
            description=f"DuckDB SQL over {folder}: {_one_line(source.sql)}",
            kind="sql",
            path=None,
            _reader=reader,
        )
    reader = _DatabaseReader(origin, source, data_dir, read, key)
    what = f"table {source.table}" if source.table else f"query {_one_line(source.query or '')}"
    return TableSource(
        name=table,
        description=f"database {reader.masked}, {what}",
        kind="url",
        path=None,
        _reader=reader,
    )
