"""The [[accounts]] of resilin.toml: the account id of the local clouds' operator, under which Resilin
runs every cluster's instances, can be no user's.  ``resilin server`` refusing it at start is in
tests/service/test_config_accounts.py."""

from __future__ import annotations

import pytest

from resilin.aws.sigv4 import Credentials
from resilin.service import server
from resilin.settings import config

OPERATOR = config.LOCAL_CLOUD_ACCOUNT


def _accounts(*ids: str) -> str:
    return "".join(
        f'[[accounts]]\naccount_id = "{account}"\naccess_key = "AKIAEXAMPLE00000000{i}"\nsecret_key = "s{i}"\n\n'
        for i, account in enumerate(ids)
    )


def test_the_local_clouds_account_id_is_refused_in_the_configuration(tmp_path):
    path = tmp_path / "resilin.toml"
    path.write_text(_accounts("111111111111", OPERATOR))
    with pytest.raises(config.ConfigError) as err:
        config.load(tmp_path, path)
    message = str(err.value)
    assert str(path) in message and "accounts[1]" in message
    assert f"account_id {OPERATOR} is reserved" in message


def test_settings_made_without_the_file_are_refused_too(tmp_path):
    settings = config.Settings(home=tmp_path, accounts=(Credentials("AKIAEXAMPLE000000000", "s", OPERATOR),))
    with pytest.raises(config.ConfigError, match="reserved"):
        server.start(settings)
    assert list(tmp_path.iterdir()) == []  # refused before anything was made


def test_other_account_ids_are_accepted(tmp_path):
    path = tmp_path / "resilin.toml"
    path.write_text(_accounts("111111111111", "000000000001"))
    assert [c.account_id for c in config.load(tmp_path, path).accounts] == ["111111111111", "000000000001"]
