"""Secrets never reach text: the scrubbing helper, and a canary key run through the CLI against a
server that echoes our request headers in its HTTP 400 body, then looked for everywhere."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from factory.redact import REDACTED, register, scrub, watch_env
from factory.store import Store
from tests.factory.engines.fault_server import FaultServer, echo_headers
from tests.helpers import generate_pipeline, prompts, write_pipeline


@pytest.mark.parametrize("text", [
    "HTTP 400: {'Authorization': 'Bearer abcdefgh12345', 'Host': 'x'}",
    '{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}',
    "Authorization: Bearer abcdefgh12345\r\nHost: x",
    "headers {'api-key': 'abcdefgh12345'}",
    '"x-api-key":"abcdefgh12345"',
    "GET /v1/models?api_key=abcdefgh12345&x=1",
    "token Bearer abcdefgh12345 refused",
    "https://user:abcdefgh12345@example.com/v1",
])
def test_header_shapes_are_scrubbed_whatever_the_value(text):
    cleaned = scrub(text)
    assert "abcdefgh12345" not in cleaned and "dXNlcjpwYXNzd29yZA" not in cleaned and REDACTED in cleaned


def test_configured_secret_values_are_scrubbed_anywhere(monkeypatch):
    monkeypatch.setenv("FACTORY_TEST_KEY_A", "key-value-" + secrets.token_hex(8))
    watch_env("FACTORY_TEST_KEY_A")  # what a model's api_key_env does when the spec is read
    token = "campaign-" + secrets.token_hex(8)
    register(token)  # what campaign tokens and a Ray token file do
    text = f"invalid key {os.environ['FACTORY_TEST_KEY_A']} (rater token {token})"
    assert scrub(text) == f"invalid key {REDACTED} (rater token {REDACTED})"
    assert scrub("short words stay") == "short words stay"


def test_log_records_are_scrubbed_once_installed(capsys):
    from factory.redact import install

    canary = "log-canary-" + secrets.token_hex(8)
    register(canary)
    install()
    logger = logging.getLogger("factory.test_redact")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    try:
        logger.warning("server said %s", {"Authorization": f"Bearer {canary}"})
        try:
            raise RuntimeError(f"failed with {canary}")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert canary not in err and "RuntimeError: failed with [redacted]" in err


def _leaks(folder: Path, canary: str) -> list[str]:
    """Every file under `folder` whose bytes, or whose Parquet values once decoded, hold the canary."""
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        if canary.encode() in path.read_bytes():
            found.append(str(path))
        elif path.suffix == ".parquet" and canary in str(pq.read_table(path).to_pylist()):
            found.append(f"{path} (decoded)")
    return found


def test_a_canary_key_echoed_by_the_server_is_nowhere(tmp_path):
    canary = "sk-canary-" + secrets.token_hex(12)
    env = {**os.environ, "FACTORY_CANARY_KEY": canary}
    with FaultServer(echo_headers(400)) as server:
        raw = generate_pipeline("served", n=1)
        raw["models"]["m"] = {"name": "served", "backend": "openai", "base_url": server.url,
                              "api_key_env": "FACTORY_CANARY_KEY", "max_retries": 0}
        path = write_pipeline(tmp_path / "pipeline", raw, prompts(3))
        store = tmp_path / "store"
        run = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--store", str(store),
                              "--executor", "local"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    # The server did get the key, and did echo it: the stored error is the redacted echo.
    assert any(headers.get("Authorization") == f"Bearer {canary}" for _, _, headers in server.requests)
    errors = Store(store).sql("SELECT error FROM responses WHERE error IS NOT NULL")["error"].to_list()
    assert len(errors) == 3 and all("HTTP 400" in e and REDACTED in e and "request_headers" in e for e in errors)
    export = subprocess.run([sys.executable, "-m", "factory.cli", "export", "responses", "--out",
                             str(tmp_path / "export"), "--format", "raw", "--store", str(store)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr[-3000:]
    assert _leaks(store, canary) == [] and _leaks(tmp_path / "export", canary) == []
    logs = run.stdout + run.stderr + export.stdout + export.stderr
    assert canary not in logs and canary[:16] not in logs
