"""Server config parsing: defaults, validation messages, environment override."""

import pytest

from ferret.encoders.registry import DEFAULT_MODELS
from ferret.server.config import ConfigError, load_config, parse_config


def test_defaults_serve_the_embedded_models():
    config = load_config(None)
    assert config.models == DEFAULT_MODELS
    assert config.server.max_message_bytes == 256 * 1024 * 1024
    assert config.server.api_key is None and config.server.metrics_port is None


def test_file_values_and_model_tables(tmp_path):
    path = tmp_path / "ferret.toml"
    path.write_text('[server]\nport = 6001\nmax_message_mb = 64\n[batching]\nmax_queue = 10\n'
                    '[models.m]\nfamily = "bm25"\noptions = { k1 = 1.2 }\n[collections]\nroot = "x"\n')
    config = load_config(path)
    assert (config.server.port, config.server.max_message_bytes) == (6001, 64 * 1024 * 1024)
    assert config.batching.max_queue == 10
    assert [(m.name, m.family, dict(m.options)) for m in config.models] == [("m", "bm25", {"k1": 1.2})]
    assert config.raw["collections"] == {"root": "x"}  # other services read their own tables


@pytest.mark.parametrize("doc, message", [
    ({"server": {"prot": 1}}, "unknown keys ['prot']"),
    ({"server": {"tls_cert": "c.pem"}}, "tls_cert and tls_key go together"),
    ({"server": {"max_message_mb": 0}}, "max_message_mb must be at least 1"),
    ({"batching": {"max_queue": 0}}, "max_queue must be positive"),
])
def test_bad_values_name_the_key(doc, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(doc)


def test_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("FERRET_API_KEY", "from-env")
    assert parse_config({"server": {"api_key": "from-file"}}).server.api_key == "from-env"
