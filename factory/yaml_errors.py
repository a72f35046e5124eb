"""One way to parse YAML and report a syntax error: `file:line:col: malformed YAML: problem`, one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from factory.errors import ConfigError, FactoryError


def yaml_error_message(source: str | Path, exc: yaml.YAMLError) -> str:
    """The one-line message for a YAML syntax error; line and column are 1-based, as editors count."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(source)
    # `problem` is the short reason ("could not find expected ':'"); str(exc) repeats the context over lines.
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}: malformed YAML: {problem}"


def parse_yaml(text: str, source: str | Path, error: type[FactoryError] = ConfigError) -> Any:
    """`yaml.safe_load(text)`, a syntax error raised as `error` (the caller's own class) with no traceback."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(yaml_error_message(source, exc)) from None


def load_yaml_file(path: Path, what: str) -> Any:
    """A YAML file's contents; an unreadable file or bad syntax is a ConfigError naming `what` and the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    return parse_yaml(text, path)
