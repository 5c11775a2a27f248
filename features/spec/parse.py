"""Reading a spec: YAML (duplicate keys refused) into the model of its format version.

:func:`load_spec` reads a file, :func:`parse_spec` a mapping; both turn every problem
into one :class:`~features.errors.SpecError` listing each problem with its key path.
A document without ``version`` is read as version 1, so that its other problems are
reported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from features.errors import SpecError
from features.spec.model import (
    SPEC_VERSIONS,
    AnySpec,
    DatasetSpec,
    DatasetSpecV2,
    _suggest,
)

__all__ = ["load_spec", "parse_spec", "example_spec_path", "spec_error"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    detail = f"{context}, {problem}" if context and "duplicate" not in problem else problem
    return f"{where}YAML syntax error: {detail}"


def _format_loc(loc: Sequence[str | int]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        loc = err["loc"]
        if not loc and msg.startswith("spec"):
            problems.extend(msg.splitlines())  # root checks already name their key paths
            continue
        got = err.get("input")
        hint = ""
        if err["type"] in (
            "string_type",
            "literal_error",
            "int_type",
            "bool_type",
            "list_type",
            "model_type",
            "dict_type",
            "string_pattern_mismatch",
        ):
            hint = f"; got {got!r}"
            if isinstance(got, bool | int | float) and err["type"] in ("string_type", "model_type"):
                hint += " (YAML read a bare yes/no/number; quote the column name)"
            elif isinstance(got, dict) and err["type"] == "string_type":
                hint += " (a name containing ': ' must be quoted)"
        if err["type"] == "missing":
            msg = "is required"
        if loc and loc[-1] == "version" and err["type"] == "literal_error":
            msg = (
                f"unsupported spec version {got!r}; this leadscore reads versions "
                f"{' and '.join(map(str, SPEC_VERSIONS))}"
            )
            hint = ""
        problems.append(f"{_format_loc(loc)}: {msg}{hint}")
    return problems


def _spec_error(origin: str, problems: list[str]) -> SpecError:
    if len(problems) == 1:
        return SpecError(f"invalid dataset spec {origin}: {problems[0]}")
    lines = "\n".join(f"  {p}" for p in problems)
    return SpecError(f"invalid dataset spec {origin} ({len(problems)} problems):\n{lines}")


def spec_error(origin: str, problems: list[str]) -> SpecError:
    """One SpecError listing ``problems`` (each starting with its key path)."""
    return _spec_error(origin, problems)


def validation_problems(exc: ValidationError) -> list[str]:
    """A pydantic ValidationError as problems with key paths."""
    return _pydantic_problems(exc)


def parse_spec(data: Any, *, base_dir: str | Path | None = None, origin: str = "spec") -> AnySpec:
    """Validate a spec given as a mapping (already parsed YAML).

    Parameters
    ----------
    data
        The parsed YAML document.
    base_dir
        Directory that a relative ``source`` is resolved against.
    origin
        How error messages name the spec (usually the file name).

    Raises
    ------
    SpecError
        Listing every problem with its key path.
    """
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise _spec_error(
            origin,
            [f"spec: the document is {kind}; expected a mapping with 'version' and 'columns'"],
        )
    model: type[DatasetSpec] | type[DatasetSpecV2] = (
        DatasetSpecV2 if data.get("version") == 2 else DatasetSpec
    )
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(origin, _pydantic_problems(exc)) from None
    spec._base_dir = Path(base_dir) if base_dir is not None else None
    spec._origin = origin
    return spec


def load_spec(path: str | Path) -> AnySpec:
    """Read and validate a YAML dataset spec.

    Parameters
    ----------
    path
        The spec file. A relative ``source`` inside it is resolved against the
        file's directory.

    Returns
    -------
    DatasetSpec or DatasetSpecV2
        The validated spec, in the model of its ``version``. Columns are not checked
        against the data here; that happens in :func:`~features.spec.load_tables`
        (or :func:`~features.spec.load_dataset`).

    Raises
    ------
    SpecError
        When the file is missing, is not valid YAML (with line and column), or breaks
        the spec format (with the key path of every problem).
    """
    path = Path(path).expanduser()
    origin = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"dataset spec {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"dataset spec {str(path)!r} cannot be read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise _spec_error(origin, [_yaml_problem(exc)]) from None
    return parse_spec(data, base_dir=path.resolve().parent, origin=origin)


def example_spec_path(name: str = "x-education") -> Path:
    """The path of a spec shipped with leadscore, e.g. ``example_spec_path("x-education")``."""
    specs = resources.files("features") / "specs"
    candidate = specs / f"{name}.yaml"
    if not candidate.is_file():
        shipped = sorted(
            p.name.removesuffix(".yaml") for p in specs.iterdir() if p.name.endswith(".yaml")
        )
        raise SpecError(f"no shipped spec {name!r}{_suggest(name, shipped)} (shipped: {shipped})")
    return Path(str(candidate))
