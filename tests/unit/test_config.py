"""The shipped config.toml is complete and valid; precedence is file < env < flags."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from core.config import Config, ConfigError, load_config

CONFIG_TOML = Path(__file__).resolve().parents[2] / "config.toml"


def test_shipped_config_lists_every_setting_with_its_default() -> None:
    raw = tomllib.loads(CONFIG_TOML.read_text())
    defaults = Config()
    for section in dataclasses.fields(Config):
        value = getattr(defaults, section.name)
        if isinstance(value, dict):  # [plans.NAME] tables
            expected = {name: dataclasses.asdict(item) for name, item in value.items()}
        else:
            expected = dataclasses.asdict(value)
        assert raw[section.name] == expected, section.name
    assert load_config(CONFIG_TOML, environ={}) == defaults


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\ns3_listen = "127.0.0.1:1"\n[storage]\ndata_dir = "/x"\n')
    env = {"FOLIO_S3_LISTEN": "127.0.0.1:2", "FOLIO_DATA_DIR": "/y"}
    config = load_config(path, environ=env)
    assert config.server.s3_listen == "127.0.0.1:2"
    assert config.storage.data_dir == "/y"
    config = load_config(path, environ=env, s3_listen="127.0.0.1:3", data_dir="/z")
    assert config.server.s3_listen == "127.0.0.1:3"
    assert config.storage.data_dir == "/z"


def test_master_key_file_from_the_file_or_the_environment(tmp_path: Path) -> None:
    from server.runtime import master_key_path

    path = tmp_path / "c.toml"
    path.write_text('[auth]\nmaster_key_file = "/keys/a.key"\n')
    assert master_key_path(load_config(environ={}, data_dir="/d")) == Path("/d/master.key")
    assert master_key_path(load_config(path, environ={})) == Path("/keys/a.key")
    env = {"FOLIO_MASTER_KEY_FILE": "/keys/b.key"}
    assert master_key_path(load_config(path, environ=env)) == Path("/keys/b.key")


@pytest.mark.parametrize(
    "text",
    [
        '[server]\nengine = "nginx"\n',
        "[server]\nbogus = 1\n",
        '[storage]\ninline_threshold = "big"\n',
        "[nope]\n",
        '[versioning]\nnew_buckets = "maybe"\n',
        '[accounts]\ndefault_plan = "gold"\n',
        "[plans.small]\nstorage_bytes = \"lots\"\n",
        "[plans.small]\nbogus = 1\n",
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path, environ={})


def test_plans_are_read_and_an_unknown_plan_name_falls_back_to_the_default(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[plans.tiny]\nstorage_bytes = 1000\nlist_per_second = 2\n[plans.default]\nmax_buckets = 3\n')
    config = load_config(path, environ={})
    assert config.plan("tiny").storage_bytes == 1000
    assert config.plan("tiny").list_per_second == 2
    assert config.plan("tiny").read_per_second == 300  # unset: the built-in default
    assert config.plan("default").max_buckets == 3
    assert config.plan("removed-plan") == config.plan("default")
