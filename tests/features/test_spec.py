"""The YAML dataset spec: every invalid spec names its key and problem; tables load typed."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from features.errors import DataValidationError, SpecError
from features.spec import (
    DatasetSpec,
    example_spec_path,
    load_dataset,
    load_spec,
    parse_spec,
    safe_name,
)

TINY_CSV = """\
Lead Key,Lead No,Email,Won?,Source Channel,Total Visits,Sales Note,Created,junk,
a1,1,a@x.com,Yes,Web,3,hot,2026-01-01T00:00:00Z,x,
a2,2,b@x.com,no,Select,,cold,2026-01-02T00:00:00Z,x,
a3,3,c@x.com,YES,Event,"1,234.5",hot,2026-01-03T00:00:00+01:00,x,
a4,4,d@x.com,No,Web,0,,2026-01-04T00:00:00Z,x,
"""

TINY_SPEC = {
    "version": 1,
    "source": "tiny.csv",
    "read": {
        "na_values": ["Select"],
        "drop_columns": ["Unnamed: 9"],
        "csv": {"thousands": ","},
    },
    "columns": {
        "id": "Lead Key",
        "label": {"column": "Won?", "positive": ["yes"], "negative": ["no"]},
        "created_at": "Created",
        "categorical": [{"column": "Source Channel", "label": "Lead source"}],
        "numeric": ["Total Visits"],
        "ignore": ["Lead No", "junk"],
        "leaky": [{"column": "Sales Note", "reason": "written by sales"}],
        "pii": ["Email"],
    },
}


def write_spec(tmp_path: Path, spec: dict | str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def spec_with(**columns: object) -> dict:
    """The tiny spec with some roles replaced (``None`` removes a role)."""
    cols = {**TINY_SPEC["columns"], **columns}
    return {**TINY_SPEC, "columns": {k: v for k, v in cols.items() if v is not None}}


def spec_error(tmp_path: Path, spec: dict | str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(tmp_path, spec))
    return str(info.value)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.csv").write_text(TINY_CSV, encoding="utf-8")
    return write_spec(tmp_path, TINY_SPEC)


# --------------------------------------------------------------------------- invalid specs


def test_unknown_role_is_named_with_a_suggestion(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(categorial=["Source Channel"]))
    assert "spec.columns: unknown role 'categorial'; did you mean 'categorical'?" in message


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    message = spec_error(tmp_path, {**TINY_SPEC, "na_values": ["Select"]})
    assert "spec: unknown key 'na_values'" in message
    assert "read" in message  # the list of known keys points at where it belongs


def test_unknown_key_in_an_entry_is_named(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(numeric=[{"column": "Total Visits", "lable": "x"}]))
    assert "spec.columns.numeric[0]: unknown key 'lable'; did you mean 'label'?" in message


def test_column_in_two_roles(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(numeric=["Total Visits", "Source Channel"]))
    assert (
        "spec.columns.numeric[1]: 'Source Channel' already has a role at "
        "spec.columns.categorical[0]; a column has exactly one role"
    ) in message


def test_column_listed_twice_in_one_role(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(ignore=["junk", "junk", "Lead No"]))
    assert "spec.columns.ignore[1]: 'junk' already has a role at spec.columns.ignore[0]" in message


def test_dropped_column_cannot_also_have_a_role(tmp_path: Path) -> None:
    spec = {**TINY_SPEC, "read": {"drop_columns": ["junk"]}}
    message = spec_error(tmp_path, spec)
    assert "spec.columns.ignore[1]: 'junk' already has a role" not in message
    assert (
        "spec.read.drop_columns[0]: 'junk' already has a role at spec.columns.ignore[1]" in message
    )


def test_no_outcome(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(label=None))
    assert "spec.columns: no outcome; set 'label'" in message


def test_both_label_and_converted_at(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(converted_at="Created", created_at=None))
    assert "spec.columns: both 'label' and 'converted_at' are set; keep one" in message


def test_no_feature_columns(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(categorical=[], numeric=None))
    assert "spec.columns: no feature columns; list at least one column" in message


def test_missing_id_and_version(tmp_path: Path) -> None:
    spec = {k: v for k, v in spec_with(id=None).items() if k != "version"}
    message = spec_error(tmp_path, spec)
    assert "(2 problems)" in message
    assert "spec.version: is required" in message
    assert "spec.columns.id: is required" in message


def test_unsupported_version(tmp_path: Path) -> None:
    message = spec_error(tmp_path, {**TINY_SPEC, "version": 3})
    assert "spec.version: unsupported spec version 3; this leadscore reads versions 1 and 2" in message


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        version: 1
        columns:
          id: Lead Key
          numeric: [Total Visits
          label: Won?
        """
    )
    message = spec_error(tmp_path, text)
    assert message.startswith("invalid dataset spec spec.yaml: line 5, column")
    assert "YAML syntax error" in message


def test_duplicate_yaml_key_is_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    text = "version: 1\ncolumns:\n  id: a\n  numeric: [b]\n  numeric: [c]\n"
    message = spec_error(tmp_path, text)
    assert "line 5, column 3: YAML syntax error: duplicate key 'numeric'" in message


def test_bare_yes_as_a_column_name_suggests_quoting(tmp_path: Path) -> None:
    text = "version: 1\ncolumns:\n  id: a\n  label: b\n  categorical: [Yes]\n"
    message = spec_error(tmp_path, text)
    assert "spec.columns.categorical[0]:" in message
    assert "got True (YAML read a bare yes/no/number; quote the column name)" in message


def test_unquoted_colon_in_a_name_suggests_quoting(tmp_path: Path) -> None:
    text = "version: 1\nread:\n  drop_columns:\n    - Unnamed: 37\ncolumns:\n  id: a\n  label: b\n  numeric: [c]\n"
    message = spec_error(tmp_path, text)
    assert "spec.read.drop_columns[0]:" in message
    assert "a name containing ': ' must be quoted" in message


def test_label_value_both_positive_and_negative(tmp_path: Path) -> None:
    message = spec_error(
        tmp_path, spec_with(label={"column": "Won?", "positive": [1, "yes"], "negative": ["1.0"]})
    )
    assert "spec.columns.label: ['1'] are both positive and negative" in message


def test_feature_renamed_onto_a_reserved_name(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(numeric=["Total Visits", "Label"]))
    assert "spec.columns.numeric[1]: 'Label' would be named 'label', which is reserved" in message


def test_two_columns_with_the_same_safe_name(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(numeric=["Total Visits", "total-visits"]))
    assert (
        "spec.columns.numeric[1]: 'total-visits' would be named 'total_visits', like spec.columns.numeric[0]"
        in message
    )


def test_explicit_name_must_be_safe(tmp_path: Path) -> None:
    message = spec_error(
        tmp_path, spec_with(numeric=[{"column": "Total Visits", "name": "Total:Visits"}])
    )
    assert "spec.columns.numeric[0].name:" in message


def test_empty_and_non_mapping_documents(tmp_path: Path) -> None:
    assert "the document is empty" in spec_error(tmp_path, "")
    assert "the document is a list" in spec_error(tmp_path, "- a\n- b\n")


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = spec_error(tmp_path, spec_with(label=None, categorical=[], numeric=None))
    assert "(2 problems)" in message


# --------------------------------------------------------------------------- spec vs. header


def test_unknown_column_names_the_key_and_suggests(tmp_path: Path, tiny: Path) -> None:
    spec = load_spec(
        write_spec(
            tmp_path, spec_with(numeric=["Total Visit"], ignore=["Lead No", "junk", "Total Visits"])
        )
    )
    with pytest.raises(SpecError) as info:
        load_dataset(spec)
    assert (
        "spec.columns.numeric[0]: 'Total Visit' is not a column of tiny.csv; "
        "did you mean 'Total Visits'?"
    ) in str(info.value)


def test_unassigned_columns_are_listed(tmp_path: Path, tiny: Path) -> None:
    spec = load_spec(write_spec(tmp_path, spec_with(ignore=["Lead No"])))
    with pytest.raises(SpecError) as info:
        load_dataset(spec)
    message = str(info.value)
    assert "spec.columns: 1 column(s) of tiny.csv have no role: 'junk'" in message
    assert "default_role: ignore" in message


def test_default_role_ignore_covers_unassigned_columns_and_reports_them(
    tmp_path: Path, tiny: Path
) -> None:
    spec = load_spec(
        write_spec(tmp_path, {**spec_with(ignore=["Lead No"]), "default_role": "ignore"})
    )
    data = load_dataset(spec)
    assert data.defaulted == ["junk"]
    assert data.ignored == ["Lead No", "junk"]
    assert data.summary()["defaulted_to_ignore"] == ["junk"]


def test_missing_data_file(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, TINY_SPEC))
    with pytest.raises(
        SpecError, match=r"tiny\.csv' does not exist \(spec.source\); pass another file with --data"
    ):
        load_dataset(spec)


def test_no_source_and_no_data_path(tmp_path: Path) -> None:
    spec = parse_spec({k: v for k, v in TINY_SPEC.items() if k != "source"})
    with pytest.raises(SpecError, match="spec.source: no data file"):
        load_dataset(spec)


# --------------------------------------------------------------------------- a tiny table


def test_tiny_csv_loads_typed(tiny: Path) -> None:
    data = load_dataset(load_spec(tiny))
    frame = data.frame
    assert list(frame.columns) == [
        "lead_id",
        "created_at",
        "label",
        "source_channel",
        "total_visits",
    ]
    assert frame["lead_id"].dtype == "string"
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["created_at"].iloc[2] == pd.Timestamp("2026-01-02T23:00:00Z")
    assert frame["label"].dtype == "int64"
    assert frame["label"].tolist() == [1, 0, 1, 0]
    assert frame["source_channel"].dtype == pd.StringDtype()
    assert frame["source_channel"].isna().tolist() == [False, True, False, False]  # "Select"
    assert frame["total_visits"].dtype == "float64"
    assert frame["total_visits"].tolist()[2] == 1234.5  # thousands separator
    assert pd.isna(frame["total_visits"].iloc[1])
    assert data.has_time is True
    assert data.categorical == ["source_channel"] and data.numeric == ["total_visits"]
    assert data.features == ["source_channel", "total_visits"]
    assert data.labels == {"source_channel": "Lead source", "total_visits": "Total Visits"}
    assert data.original_names["total_visits"] == "Total Visits"
    assert data.label_rate == 0.5


def test_leaky_columns_are_apart_and_pii_is_never_loaded(tiny: Path) -> None:
    data = load_dataset(load_spec(tiny))
    assert data.leaky == ["sales_note"]
    assert "sales_note" not in data.frame.columns
    assert data.leaky_frame["sales_note"].tolist()[:2] == ["hot", "cold"]
    assert data.leaky_frame["lead_id"].equals(data.frame["lead_id"])
    assert data.leaky_reasons == {"sales_note": "written by sales"}
    for frame in (data.frame, data.leaky_frame):
        assert not frame.isin(["a@x.com"]).any().any()
    assert data.summary()["pii"] == ["Email"]


def test_fingerprint_is_the_sha256_of_the_source(tiny: Path) -> None:
    data = load_dataset(load_spec(tiny))
    expected = hashlib.sha256((tiny.parent / "tiny.csv").read_bytes()).hexdigest()
    assert data.fingerprint == expected


def test_data_path_overrides_source_and_parquet_loads_the_same(tmp_path: Path, tiny: Path) -> None:
    csv = load_dataset(load_spec(tiny))
    raw = pd.read_csv(tmp_path / "tiny.csv", dtype="string", keep_default_na=False)
    raw = raw.drop(columns=["Unnamed: 9"]).replace({"": None})
    raw["Total Visits"] = [3.0, None, 1234.5, 0.0]
    raw.to_parquet(tmp_path / "other.parquet")
    spec = load_spec(write_spec(tmp_path, {**TINY_SPEC, "read": {"na_values": ["Select"]}}))
    parquet = load_dataset(spec, tmp_path / "other.parquet")
    assert parquet.source == (tmp_path / "other.parquet").resolve()
    pd.testing.assert_frame_equal(parquet.frame, csv.frame)  # na_values applies to both


def test_converted_at_gives_the_label(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "id,created,won_at,x\n"
        "a,2026-01-01T00:00:00Z,2026-02-01T00:00:00Z,1\n"
        "b,2026-01-01T00:00:00Z,,2\n",
        encoding="utf-8",
    )
    spec = {
        "version": 1,
        "source": "t.csv",
        "columns": {
            "id": "id",
            "converted_at": "won_at",
            "created_at": "created",
            "numeric": ["x"],
        },
    }
    data = load_dataset(load_spec(write_spec(tmp_path, spec)))
    assert data.frame["label"].tolist() == [1, 0]
    assert data.converted_at is not None and data.converted_at.notna().tolist() == [True, False]
    assert "converted_at" not in data.frame.columns


def test_without_created_at_there_is_no_time(tmp_path: Path, tiny: Path) -> None:
    spec = load_spec(
        write_spec(tmp_path, spec_with(created_at=None, ignore=["Lead No", "junk", "Created"]))
    )
    data = load_dataset(spec)
    assert data.has_time is False
    assert "created_at" not in data.frame.columns


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (
            "Total Visits",
            "many",
            "tiny.csv.Total Visits: 'many' is not a number; the spec lists this column as numeric (row 1, lead_id a2)",
        ),
        (
            "Won?",
            "maybe",
            "tiny.csv.Won?: 'maybe' is neither positive ['yes'] nor negative ['no'] (spec.columns.label) (row 1, lead_id a2)",
        ),
        (
            "Won?",
            "",
            "tiny.csv.Won?: None is missing; every lead needs an outcome (row 1, lead_id a2)",
        ),
        (
            "Lead Key",
            "a1",
            "tiny.csv.Lead Key: 'a1' is a duplicate of row 0; ids must be unique (row 1, lead_id a1)",
        ),
        ("Created", "yesterday", "tiny.csv.Created: 'yesterday' is not a timestamp"),
        ("Created", "2026-01-02 10:00", "tiny.csv.Created: '2026-01-02 10:00' has no time zone"),
    ],
)
def test_bad_values_name_table_field_value_and_row(
    tmp_path: Path, tiny: Path, column: str, value: str, expected: str
) -> None:
    frame = pd.read_csv(tmp_path / "tiny.csv", dtype="string", keep_default_na=False)
    frame.loc[1, column] = value
    frame.to_csv(tmp_path / "tiny.csv", index=False)
    with pytest.raises(DataValidationError) as info:
        load_dataset(load_spec(tiny))
    assert expected in str(info.value)
    assert all(issue.table == "tiny.csv" for issue in info.value.issues)


def test_default_label_values_and_yaml_booleans(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "id,won,x\na,Yes,1\nb,no,2\nc,1,3\nd,FALSE,4\n", encoding="utf-8"
    )
    for label in ("won", {"column": "won", "positive": [True, 1], "negative": [False, 0]}):
        spec = {
            "version": 1,
            "source": "t.csv",
            "columns": {"id": "id", "label": label, "numeric": ["x"]},
        }
        data = load_dataset(load_spec(write_spec(tmp_path, spec)))
        assert data.frame["label"].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize(
    ("column", "name"),
    [
        ("Total Time Spent on Website", "total_time_spent_on_website"),
        ("Won?", "won"),
        ('a "quoted" {json}: [list], x', "a_quoted_json_list_x"),
        ("Café Visits", "cafe_visits"),
        ("2nd touch", "f_2nd_touch"),
        ("???", "column"),
    ],
)
def test_safe_name(column: str, name: str) -> None:
    assert safe_name(column) == name


def test_with_role_moves_a_column(tiny: Path) -> None:
    spec = load_spec(tiny).with_role("Sales Note", "categorical")
    data = load_dataset(spec)
    assert "sales_note" in data.categorical and data.leaky == []
    with pytest.raises(SpecError, match="did you mean 'Sales Note'"):
        spec.with_role("Sales Notes", "leaky")


# --------------------------------------------------------------------------- X Education


def test_shipped_example_spec_validates_without_data() -> None:
    spec = load_spec(example_spec_path("x-education"))
    assert isinstance(spec, DatasetSpec)
    assert spec.has_time is False
    assert spec.read.na_values == ["Select"]
    assert spec.read.drop_columns == ["Unnamed: 37"]
    leaky = {e.column for e in spec.columns.leaky}
    assert leaky == {
        "Tags",
        "Lead Quality",
        "Lead Profile",
        "Last Activity",
        "Last Notable Activity",
        "Asymmetrique Activity Index",
        "Asymmetrique Profile Index",
        "Asymmetrique Activity Score",
        "Asymmetrique Profile Score",
    }
    assert "Lead Number" in {e.column for e in spec.columns.ignore}


def test_unknown_shipped_spec() -> None:
    with pytest.raises(SpecError, match="did you mean 'x-education'"):
        example_spec_path("x-educaton")


@pytest.mark.xeducation
def test_x_education_loads_through_the_example_spec(xeducation_csv: Path) -> None:
    data = load_dataset(load_spec(example_spec_path()), xeducation_csv)
    frame = data.frame
    assert len(frame) == 9240
    assert data.label_rate == pytest.approx(0.385, abs=0.001)
    assert data.has_time is False and "created_at" not in frame.columns
    assert frame["lead_id"].is_unique
    # "Select" (unanswered) is missing, not a category
    assert not frame[data.categorical].isin(["Select"]).any().any()
    assert frame["specialization"].isna().sum() > 3000
    assert "tags" not in data.features and "tags" in data.leaky
    assert "lead_number" not in frame.columns
    assert data.numeric == ["totalvisits", "total_time_spent_on_website", "page_views_per_visit"]
    assert len(data.features) == 25
    assert data.labels["what_is_your_current_occupation"] == "Current occupation"
    assert data.leaky_frame["asymmetrique_activity_score"].dtype == "float64"
    assert data.leaky_frame["tags"].notna().sum() > 5000


@pytest.mark.xeducation
def test_x_education_variant_with_tags_unmarked(tmp_path: Path, xeducation_csv: Path) -> None:
    """The variant the leakage audit must catch on its own: Tags left as a feature."""
    shipped = yaml.safe_load(example_spec_path().read_text(encoding="utf-8"))
    cols = shipped["columns"]
    cols["leaky"] = [e for e in cols["leaky"] if e["column"] != "Tags"]
    cols["categorical"].append("Tags")
    shipped["source"] = str(xeducation_csv)
    variant = load_dataset(load_spec(write_spec(tmp_path, shipped, "x-education-tags.yaml")))
    assert "tags" in variant.categorical and "tags" not in variant.leaky
    via_api = load_dataset(
        load_spec(example_spec_path()).with_role("Tags", "categorical"), xeducation_csv
    )
    pd.testing.assert_frame_equal(variant.frame, via_api.frame)


def test_trusted_marks_a_feature_and_is_refused_elsewhere(tmp_path: Path) -> None:
    from features.spec import trusted_feature_names

    spec = load_spec(write_spec(tmp_path, spec_with(
        numeric=[{"column": "Total Visits", "trusted": True}])))
    assert trusted_feature_names(spec) == ("total_visits",)
    assert trusted_feature_names(load_spec(write_spec(tmp_path, TINY_SPEC))) == ()
    message = spec_error(tmp_path, spec_with(ignore=[{"column": "Lead No", "trusted": True},
                                                     "junk"]))
    assert ("spec.columns.ignore[0].trusted: got true for 'Lead No', a column with the role "
            "'ignore'; expected it only on a 'categorical' or 'numeric' feature") in message
    message = spec_error(tmp_path, spec_with(numeric=[{"column": "Total Visits",
                                                       "trusted": "maybe"}]))
    assert "spec.columns.numeric[0].trusted" in message and "maybe" in message
