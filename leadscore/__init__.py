"""leadscore: the command-line interface and the typed settings that wire the packages."""

__version__ = "0.1.0"
