"""Points-based rules that score leads when no model can: cold starts, no model, errors."""
