"""tests.helpers.wait_until_ready: the one readiness wait of the fixtures that start servers."""

import subprocess
import sys

import pytest

from tests.helpers import PROBE_TIMEOUT_S, READY_DEADLINE_S, wait_until_ready


def test_deadlines_are_sized_for_a_loaded_machine():
    assert PROBE_TIMEOUT_S >= 5 and READY_DEADLINE_S >= 120


def test_ready_after_a_few_failed_probes():
    answers = iter([ConnectionError("refused"), False, True])

    def probe():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_until_ready("a flaky server", probe, interval_s=0.01)


def test_giving_up_says_what_it_waited_for_and_the_last_error():
    def probe():
        raise ConnectionError("connection refused on 127.0.0.1:9")

    with pytest.raises(AssertionError, match=r"gave up waiting for moto at 127.0.0.1:9 after .*connection refused"):
        wait_until_ready("moto at 127.0.0.1:9", probe, deadline_s=0.2, interval_s=0.05)


def test_a_process_that_exits_fails_at_once_with_its_exit_code():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(AssertionError, match="the rating app: the process exited with code 3"):
        wait_until_ready("the rating app", lambda: False, process=process, deadline_s=60)
