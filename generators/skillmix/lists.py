"""Users' own skill / query-type lists: a text file (one per line, `name: definition` allowed,
`#` comments) or a YAML file (a list of names, a list of {name, definition}, or a mapping
name -> definition). Errors name the file and line."""

from __future__ import annotations

from pathlib import Path


from factory.errors import ConfigError
from factory.yaml_errors import parse_yaml


def read_list_file(path: Path) -> list[tuple[str, str | None]]:
    if not path.is_file():
        raise ConfigError(f"{path}: list file not found (relative paths are resolved from the working directory)")
    if path.suffix in (".yaml", ".yml"):
        return _yaml_items(path)
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, _, definition = text.partition(":")
        if not name.strip():
            raise ConfigError(f"{path}:{number}: empty name before ':'")
        items.append((name.strip(), definition.strip() or None))
    return items


def parse_entry(text: str) -> tuple[str, str | None]:
    name, _, definition = text.partition(":")
    return name.strip(), definition.strip() or None


def _yaml_items(path: Path) -> list[tuple[str, str | None]]:
    data = parse_yaml(path.read_text(encoding="utf-8"), path)
    if isinstance(data, dict):
        return [(str(name), None if definition is None else str(definition)) for name, definition in data.items()]
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of names, a list of {{name, definition}} or a mapping name -> definition")
    items = []
    for index, entry in enumerate(data):
        if isinstance(entry, str):
            items.append(parse_entry(entry))
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            definition = entry.get("definition")
            items.append((entry["name"].strip(), None if definition is None else str(definition)))
        else:
            raise ConfigError(f"{path}: item {index}: expected a name or a mapping with 'name' (and 'definition')")
    return items
