"""Commands: (to be filled in by the owning issue)."""
