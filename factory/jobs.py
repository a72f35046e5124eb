"""Ray jobs: submit a pipeline to a cluster's job server and follow it (`factory submit/status/logs/stop`).

Ray 2.60 turns on token authentication for local clusters (DESIGN.md §6): the client and the
cluster must agree. With `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` (or `RAY_AUTH_TOKEN_PATH`) set
in the environment, the token is sent as a bearer header; it is never printed or stored.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.redact import register, scrub

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ADDRESS = "http://127.0.0.1:8265"


class JobError(FactoryError):
    pass


def _auth_headers() -> dict[str, str]:
    token = os.environ.get("RAY_AUTH_TOKEN")
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise JobError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token: {exc.strerror}") from None
    register(token)
    return {"Authorization": f"Bearer {token}"} if token else {}


def client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS
    try:
        return JobSubmissionClient(address, headers=_auth_headers())
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
        raise JobError(f"cannot reach the Ray job server at {address}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    text = " ".join(scrub(exc).split())
    if "401" in text or "nauthorized" in text or "authentication" in text.lower():
        return "authentication failed: set RAY_AUTH_MODE=token and the cluster's RAY_AUTH_TOKEN"
    return text[:300]


def _call(action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "does not exist" in text or "404" in text:
            raise JobError(f"{action}: no such job ({_short(exc)})") from None
        raise JobError(f"{action}: {_short(exc)}") from None


def submit(pipeline: str, address: str | None, store: str | None, extra_args: list[str],
           pip: list[str] | None = None) -> str:
    """Submit `factory run PIPELINE` with this checkout as the job's working directory."""
    path = Path(pipeline).resolve()
    if not path.is_file():
        raise JobError(f"pipeline not found: {pipeline}")
    try:
        relative = path.relative_to(REPO_ROOT)
    except ValueError:
        raise JobError(f"{pipeline}: the pipeline must live inside {REPO_ROOT}, which is shipped as the job's "
                       "working directory") from None
    # `python -m` rather than the `factory` script: works wherever the cluster's python has the package.
    command = ["python", "-m", "factory.cli", "run", str(relative)] + (["--store", store] if store else []) + extra_args
    runtime_env: dict[str, Any] = {
        "working_dir": str(REPO_ROOT),
        "excludes": [".venv", ".git", "factory-data", "export", "train-runs", "artifacts", "**/__pycache__", "*.gguf"],
    }
    if pip:
        runtime_env["pip"] = pip
    jobs = client(address)
    return _call("submit", jobs.submit_job, entrypoint=shlex.join(command), runtime_env=runtime_env)


def status(job_id: str, address: str | None) -> dict[str, Any]:
    info = _call(f"status {job_id}", client(address).get_job_info, job_id)
    return {"job_id": job_id, "status": str(info.status), "entrypoint": info.entrypoint, "message": info.message}


def logs(job_id: str, address: str | None, follow: bool = False) -> Iterator[str]:
    jobs = client(address)
    if not follow:
        yield _call(f"logs {job_id}", jobs.get_job_logs, job_id)
        return
    # Poll rather than stream: works through proxies that close long-lived connections.
    seen = 0
    while True:
        text = _call(f"logs {job_id}", jobs.get_job_logs, job_id)
        if len(text) > seen:
            yield text[seen:]
            seen = len(text)
        state = str(_call(f"status {job_id}", jobs.get_job_status, job_id))
        if state in ("SUCCEEDED", "FAILED", "STOPPED"):
            return
        time.sleep(1.0)


def stop(job_id: str, address: str | None) -> bool:
    return bool(_call(f"stop {job_id}", client(address).stop_job, job_id))
