"""Versioned prompt templates: a folder of `.txt` files; the hash of the files a stage uses goes
into every row's `template` column, so a changed prompt is visible in the data (and in the ids).

A template set is a bundled folder name (under `generators/skillmix/templates/`: `reference`, the
released Instruct-SkillMix generation prompts; `v1`, shorter ones plus the extraction prompts) or a
path to a folder of the same file names. Placeholders are `{name}`; only known names are replaced, so
other braces in a prompt need no escaping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.ids import stable_hash

BUNDLED_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class TemplateSet:
    name: str
    texts: dict[str, str]

    @property
    def tag(self) -> str:
        """What each row records: set name and a hash of exactly the files used."""
        return f"skillmix/{self.name}@{stable_hash(sorted(self.texts.items()), length=12)}"

    def render(self, template: str, **fields: object) -> str:
        text = self.texts[template]
        for key, value in fields.items():
            text = text.replace("{" + key + "}", str(value))
        return text.strip()


def load_templates(reference: str, names: list[str]) -> TemplateSet:
    """Load `names` (file stems) from a bundled set or a folder; errors name the missing file."""
    bundled_folder = BUNDLED_DIR / reference
    is_bundled = "/" not in reference and not reference.startswith(".") and bundled_folder.is_dir()
    folder = bundled_folder if is_bundled else Path(reference).expanduser()
    if not folder.is_dir():
        bundled = ", ".join(sorted(p.name for p in BUNDLED_DIR.iterdir() if p.is_dir()))
        raise ValueError(f"template set {reference!r} is neither a bundled set ({bundled}) nor a folder")
    texts = {}
    for name in names:
        path = folder / f"{name}.txt"
        if not path.is_file():
            raise ValueError(f"template set {reference!r} has no {path.name} (looked in {folder})")
        texts[name] = path.read_text(encoding="utf-8")
    return TemplateSet(reference, texts)
