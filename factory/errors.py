"""User-facing errors: the CLI prints their message as one line, with no traceback."""


class FactoryError(Exception):
    """A problem with the user's input (config, seed file, SQL, store path)."""


class ConfigError(FactoryError):
    """A pipeline config that cannot run; the message names the YAML path of the fault."""


class StoreError(FactoryError):
    """A store that cannot be opened, read or written, or SQL that is refused."""
