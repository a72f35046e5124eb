"""The data factory: config, store, engines, runner, export and CLI."""

__version__ = "0.1.0"
