"""Where a training run's artifacts live, and the key that names a run.

Home: the config's `output_dir` when set (a local folder or an s3:// URL), else the store's
`_artifacts/train-runs/` — a local folder, or the object store itself, where Ray Train writes its
checkpoints through pyarrow.fs. Never the working directory: under `ray job submit` that is Ray's
temporary copy of the job's files, deleted with the session, and locally it is wherever the user
happened to be.

Key: a run folder is `<run_name or kind>-<hash of store location + data snapshot + config>`
(`max_steps`, `resume`, `output_dir` and `run_name` aside), so only a run of the same settings on
the same rows of the same store resumes from its checkpoints; a longer `max_steps` continues it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec

from factory.errors import ConfigError
from factory.ids import stable_hash
from factory.store import Store
from factory.store.tables import storage_options
from trainers.config import TrainConfig

RUNS_KIND = "train-runs"  # the store's `_artifacts/train-runs/`
KEY_EXCLUDES: dict[str, Any] = {"resume": True, "output_dir": True, "run_name": True, "training": {"max_steps"}}


def run_name(config: TrainConfig, store: Store, ids_hash: str) -> str:
    settings = config.model_dump(mode="json", exclude=KEY_EXCLUDES)
    return f"{config.run_name or config.kind}-{stable_hash(store.url, ids_hash, settings, length=12)}"


def runs_home(config: TrainConfig, store: Store) -> str:
    """The folder (or URL) that holds this config's run folders; refused inside a job's working dir."""
    if config.output_dir is not None:
        _refuse_job_working_dir(config.output_dir, "output_dir")
        return config.output_dir
    home = store.artifacts_uri(RUNS_KIND)
    _refuse_job_working_dir(home, f"--store {store.location}")
    return home


def job_working_dir() -> Path | None:
    """This process's working directory when it is a Ray job's unpacked `working_dir` (the driver
    of `ray job submit --working-dir`), else None. Ray deletes that copy with the session."""
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return None
    try:
        runtime_env = json.loads(raw).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return None
    return Path.cwd().resolve() if runtime_env.get("working_dir") else None


def _refuse_job_working_dir(location: str, what: str) -> None:
    folder = job_working_dir()
    if folder is None or is_url(location) or not Path(location).resolve().is_relative_to(folder):
        return
    raise ConfigError(f"{what}: {location} is inside this Ray job's working directory ({folder}), which Ray "
                      "deletes when the job's session ends; give an absolute path outside it or an s3:// URL")


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def exists(location: str) -> bool:
    """Whether a local path or object-store URL exists (a training_runs row's model, say)."""
    filesystem, path = fsspec.core.url_to_fs(location)
    return bool(filesystem.exists(path))


def ray_storage(home: str) -> tuple[str, Any]:
    """RunConfig's (storage_path, storage_filesystem) for a runs home. An s3:// home gets a pyarrow
    S3 filesystem with the endpoint and region the store uses (AWS_ENDPOINT_URL, AWS_REGION)."""
    if urlparse(home).scheme not in ("s3", "s3a"):
        return home, None
    from pyarrow import fs

    options = storage_options(home) or {}
    endpoint = options.get("endpoint_url")
    filesystem = fs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
        scheme="http" if endpoint and endpoint.startswith("http://") else "https",
        region=options.get("region") or "")
    return home.split("://", 1)[1], filesystem


def as_location(home: str, path: str) -> str:
    """A path Ray reports (within its storage filesystem) as the location users give back: on an
    object store the URL (`s3://bucket/...`), locally the path itself."""
    if is_url(home) and not is_url(path):
        return f"{urlparse(home).scheme}://{path.lstrip('/')}"
    return path
