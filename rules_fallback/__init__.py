"""Points-based rules that score leads when no model can: cold starts, no model, errors.

Load a rule set with :func:`load_rules` (the packaged default when no path is given)
and score validated frames with :func:`score_leads`. Reasons come in the same
:class:`~features.reasons.Reason` shape as the model's. With labelled history,
:func:`fit_mapping` refits the points-to-probability map and :func:`rules_metrics`
measures the rules (ROC AUC and calibration).
"""

from rules_fallback.calibration import fit_mapping, rules_metrics
from rules_fallback.engine import Evaluation, evaluate, points_to_probability, score_leads
from rules_fallback.rules import DEFAULT_RULES_PATH, RuleSet, load_rules, parse_rules

__all__ = [
    "DEFAULT_RULES_PATH",
    "Evaluation",
    "RuleSet",
    "evaluate",
    "fit_mapping",
    "load_rules",
    "parse_rules",
    "points_to_probability",
    "rules_metrics",
    "score_leads",
]
