"""Points-based rules that score leads when no model can: cold starts, no model, errors.

Load a rule set with :func:`load_rules` (the packaged default when no path is given)
and score validated frames with :func:`score_leads`. Reasons come in the same
:class:`~features.reasons.Reason` shape as the model's. With labelled history,
:func:`fit_mapping` refits the points-to-probability map and :func:`rules_metrics`
measures the rules (ROC AUC and calibration).

For a user's CRM (a dataset spec), :mod:`rules_fallback.spec_rules` checks a rules file
against the spec's fields and kinds (:func:`load_spec_rules`) and scores
``SpecTables``-shaped frames (:func:`score_spec_leads`); :func:`generate_rules`
(:mod:`rules_fallback.init`) writes a starter file with points learned from the spec's
labelled history.
"""

from rules_fallback.calibration import fit_mapping, rules_metrics
from rules_fallback.engine import Evaluation, evaluate, points_to_probability, score_leads
from rules_fallback.init import generate_rules
from rules_fallback.rules import DEFAULT_RULES_PATH, RuleSet, load_rules, parse_rules
from rules_fallback.spec_rules import (
    SpecRuleSet,
    SpecVocabulary,
    evaluate_spec,
    load_spec_rules,
    parse_spec_rules,
    score_spec_leads,
)

__all__ = [
    "DEFAULT_RULES_PATH",
    "Evaluation",
    "RuleSet",
    "SpecRuleSet",
    "SpecVocabulary",
    "evaluate",
    "evaluate_spec",
    "fit_mapping",
    "generate_rules",
    "load_rules",
    "load_spec_rules",
    "parse_rules",
    "parse_spec_rules",
    "points_to_probability",
    "rules_metrics",
    "score_leads",
    "score_spec_leads",
]
