"""kptui: a stepping debugger for the Linux packet path."""

__version__ = "0.1.0"
