"""The request contract of a model trained through a dataset spec: the CRM's own fields.

A model trained on a user's CRM (``leadscore train --dataset SPEC``) knows its fields by
safe names (``lead_source``) and its activities by kinds (``forum``); the CRM knows them
as ``"Lead Source"`` and ``"forumng"``. :class:`SpecContract` is the translation, built
once from the spec and the model's feature set:

- :attr:`SpecContract.lead_model` and :attr:`~SpecContract.request_model` are pydantic
  models whose fields are the spec's fit columns under the CRM's own names, each with
  its type, its label as the description and an example; ``created_at`` is required
  only when the spec has time, and activities carry the CRM's own type values;
- :meth:`SpecContract.live_lead` turns one validated lead into the
  :class:`features.live.LiveLead` the live feature path computes from, by the loader's
  own rules: the table's ``na_values`` are missing, CRM types map to kinds and the
  unmapped ones stay generic activity. ``tests/serving/test_spec_contract.py`` checks
  that a lead sent this way gets exactly the features the training set gave it;
- :meth:`SpecContract.missing_every_field` names a request in which none of the spec's
  fields is present: unknown keys are ignored, as for the built-in contract, but a lead
  that matches nothing is almost always a broken mapping.

This module is the boundary; the service and the batch job build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from features.live import LiveLead, clean_text, timestamp_ns
from features.registry import FeatureSet
from features.spec import DatasetSpec, DatasetSpecV2
from features.spec.model import _entry_name
from features.spec.sources import missing_tokens
from serving.contract import ACTIONS_DOC, DECAY_DOC, Timestamp

__all__ = ["SpecField", "SpecContract"]

_GENERIC = "\x00generic"
"""The type an unmapped activity is given: counted as activity, never as a kind."""

@dataclass(frozen=True)
class SpecField:
    """One fit field of the contract: the feature's safe name and the CRM's column."""

    name: str
    column: str
    kind: str  # "categorical" or "numeric"
    label: str
    description: str


class SpecContract:
    """The API contract of a spec's model.

    Parameters
    ----------
    spec : DatasetSpec or DatasetSpecV2
        The spec the model was trained on (its document ships with the run).
    feature_set : FeatureSet
        The model's feature set (``LeadModel.feature_set()``); its fit features must be
        the spec's columns.

    Raises
    ------
    ValueError
        When the feature set was not built from this spec.
    """

    def __init__(self, spec: DatasetSpec | DatasetSpecV2, feature_set: FeatureSet) -> None:
        v2 = spec if isinstance(spec, DatasetSpecV2) else spec.to_v2()
        self.spec = v2
        self.feature_set = feature_set
        leads = v2.tables.leads
        columns = leads.columns
        fields = []
        for kind, entries in (("categorical", columns.categorical), ("numeric", columns.numeric)):
            for entry in entries:
                fields.append(SpecField(_entry_name(entry), entry.column, kind,
                                        entry.label or entry.column, entry.description or ""))
        self.fields: tuple[SpecField, ...] = tuple(fields)
        known = set(feature_set.feature_names())
        missing = [f.name for f in fields if f.name not in known]
        if missing:
            raise ValueError(
                f"feature set {feature_set.version} was not built from spec {v2.origin}: it has "
                f"no feature {missing[0]!r}; expected one of the spec's columns"
            )
        self.has_time = v2.has_time
        self.has_activities = v2.tables.activities is not None
        self._na = missing_tokens(leads.source, leads.read)
        self._kind_of: dict[str, str] = {}
        if v2.tables.activities is not None:
            for name, kind in v2.tables.activities.kinds.items():
                for value in kind.types:
                    self._kind_of[value.strip()] = name
        self.activity_model = self._activity_model()
        self.lead_model = self._lead_model()
        self.request_model = create_model(
            "SpecScoreRequest",
            __config__=ConfigDict(extra="ignore", frozen=True),
            leads=(list[self.lead_model], Field(min_length=1, description="The leads to score.")),
            as_of=(Timestamp | None, Field(default=None, description="Score as of this time "
                                           "(default: now); a lead's own as_of overrides it.")),
            top_reasons=(int, Field(default=3, ge=0, le=50)),
            actions=(int, Field(default=0, ge=0, le=10, description=ACTIONS_DOC)),
            decay=(bool, Field(default=False, description=DECAY_DOC)),
        )
        self.explain_model = create_model(
            "SpecExplainRequest",
            __config__=ConfigDict(extra="ignore", frozen=True),
            lead=(self.lead_model, Field(description="The lead to explain.")),
            as_of=(Timestamp | None, Field(default=None, description="Explain as of this time "
                                           "(default: now).")),
        )

    @classmethod
    def from_model(cls, model: Any) -> SpecContract | None:
        """The contract of a trained ``LeadModel``, or None for the built-in contract."""
        import yaml

        from features.spec import parse_spec

        text = getattr(model, "dataset_spec", "") or ""
        feature_set = model.feature_set()
        if not text or feature_set.name == "builtin":
            return None
        spec = parse_spec(yaml.safe_load(text), origin=f"the spec of {feature_set.version}")
        return cls(spec, feature_set)

    # -- models ----------------------------------------------------------------------

    def _activity_model(self) -> type[BaseModel]:
        types = sorted(self._kind_of)
        described = ", ".join(repr(t) for t in types[:12]) + (" ..." if len(types) > 12 else "")
        return create_model(
            "SpecActivity",
            __config__=ConfigDict(extra="ignore", frozen=True),
            type=(str, Field(min_length=1, max_length=200, pattern=r"\S",
                             description=f"The CRM's activity type, e.g. {described}. Types the "
                             "spec does not map count as generic activity.",
                             examples=[types[0] if types else "page_view"])),
            occurred_at=(Timestamp, Field(description="When it happened, ISO 8601 with a UTC "
                                          "offset; only activities before the lead's as_of count.")),
        )

    def _lead_model(self) -> type[BaseModel]:
        definitions: dict[str, Any] = {
            "lead_id": (str, Field(min_length=1, max_length=200,
                                   description="The CRM's id for the lead; echoed back.")),
            "as_of": (Timestamp | None, Field(default=None, description="Score the lead as it "
                                              "stood at this time.")),
        }
        if self.has_time:
            created = self.spec.tables.leads.columns.created_at
            definitions["created_at"] = (Timestamp, Field(
                description=f"When the lead was created ({created!r} in the CRM), ISO 8601 "
                "with a UTC offset."))
        for f in self.fields:
            text = f.label + (f": {f.description}" if f.description else "")
            if f.kind == "numeric":
                # A blank or one of the table's missing tokens is missing, as in training.
                kind: Any = Annotated[float | None, BeforeValidator(self._number_or_none)]
                field = Field(default=None, alias=f.column, description=text)
            else:
                kind = str | int | float | bool | None
                field = Field(default=None, alias=f.column, description=text, max_length=1000)
            definitions[f.name] = (kind, field)
        if self.has_activities:
            definitions["activities"] = (list[self.activity_model], Field(
                default_factory=list, description="The lead's activity history, in the CRM's "
                "own type names."))
        return create_model(
            "SpecLead",
            __config__=ConfigDict(extra="ignore", frozen=True, populate_by_name=True),
            **definitions,
        )

    # -- checks and translation ------------------------------------------------------

    def missing_every_field(self, payload: dict[str, Any]) -> bool:
        """Whether a raw lead object names none of the spec's fields (a broken mapping)."""
        return not any(f.column in payload or f.name in payload for f in self.fields)

    def expected_fields(self) -> list[str]:
        """The CRM's column names the contract reads, in spec order."""
        return [f.column for f in self.fields]

    def _text(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool):
            value = str(value)
        text = value if isinstance(value, str) else str(value)
        return None if text in self._na else clean_text(text)

    def live_lead(self, lead: BaseModel, default_as_of: datetime) -> LiveLead:
        """One validated lead (:attr:`lead_model`) as the live feature path's input."""
        attributes: dict[str, Any] = {}
        for f in self.fields:
            value = getattr(lead, f.name)
            attributes[f.name] = (None if value is None else float(value)) if f.kind == "numeric" \
                else self._text(value)
        as_of = lead.as_of if lead.as_of is not None else default_as_of
        as_of_ns = timestamp_ns(as_of)
        created_ns = timestamp_ns(lead.created_at) if self.has_time else as_of_ns
        acts = getattr(lead, "activities", None) or []
        types = [self.kind_of(a.type) for a in acts]
        return LiveLead(
            attributes=attributes, created_ns=created_ns, as_of_ns=as_of_ns,
            times=[timestamp_ns(a.occurred_at) for a in acts], types=types,
            urls=[None] * len(acts), campaigns=[None] * len(acts),
        )

    def samples(self, model: Any, now: datetime) -> dict[str, Any]:
        """Sample leads for the page, in the CRM's own words: the model's most frequent
        categories (spelt as the data spelt them most often), numbers left blank, and
        activity histories of the spec's own types (recent, none, and gone quiet)."""
        from datetime import timedelta

        vocabulary = getattr(model, "categories_", {}) or {}
        # Models trained before spellings were kept show the learned (case-folded) keys.
        spelt = getattr(model, "category_spellings_", {}) or {}
        kinds = list(self.spec.tables.activities.kinds.items()) if self.has_activities else []
        key_first = sorted(kinds, key=lambda kv: not kv[1].key_action)
        shapes = [("recently engaged", [1, 2, 3, 5, 8], 3),
                  ("no activity yet", [], 0),
                  ("gone quiet", [60, 75, 90], 2)]
        out = []
        for i, (shape, days, per_day) in enumerate(shapes):
            lead: dict[str, Any] = {"lead_id": f"SAMPLE-{i + 1}"}
            if self.has_time:
                lead["created_at"] = (now - timedelta(days=120)).isoformat()
            for f in self.fields:
                values = vocabulary.get(f.name) or []
                value = values[min(i, len(values) - 1)] if values else None
                lead[f.column] = spelt.get(f.name, {}).get(value, value)
            if self.has_activities and key_first:
                lead["activities"] = [
                    {"type": key_first[(j + k) % len(key_first)][1].types[0],
                     "occurred_at": (now - timedelta(days=d, hours=k)).isoformat()}
                    for j, d in enumerate(days) for k in range(per_day)]
            what = shape if self.has_activities else ("the most common values", "the second "
                                                       "most common", "the third")[i]
            out.append({"label": f"Sample {i + 1}: {what}", "lead": lead})
        return {"about": f"Made up from the served model of spec {self.spec.name!r}: its most "
                         "frequent categories and the spec's own activity types.",
                "samples": out}

    def kind_of(self, raw_type: str) -> str:
        """The kind a CRM type maps to, else generic activity (a value no kind has: an
        unmapped type spelt like a kind's name must not count as that kind)."""
        return self._kind_of.get(raw_type.strip(), _GENERIC)

    def _number_or_none(self, value: Any) -> Any:
        if isinstance(value, str) and (value.strip() == "" or value in self._na):
            return None
        return value
