"""The [[accounts]] of resilin.toml: ``resilin server`` started as a process refuses the local
clouds' operator account and says why.  The checks themselves are in tests/unit/test_config_accounts.py."""

from __future__ import annotations

import subprocess
import sys

from tests.unit.test_config_accounts import OPERATOR, _accounts


def test_resilin_server_refuses_to_start_with_it_and_says_why(tmp_path):
    (tmp_path / "resilin.toml").write_text(_accounts(OPERATOR))
    done = subprocess.run(
        [sys.executable, "-m", "resilin", "--home", str(tmp_path), "server"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"account_id {OPERATOR} is reserved" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was started
