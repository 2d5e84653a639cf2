"""GET /config redacts every secret; no secret ever reaches a response or a log line."""

from __future__ import annotations

import io
import logging

import httpx
import pytest
from pydantic import SecretStr

from gordon_manager.app import create_app
from gordon_manager.health.redact import redact_text, redacted_config
from gordon_manager.observability.logging import JsonFormatter
from gordon_manager.settings import Settings
from tests.conftest import make_settings

SECRETS = {
    "operator": "op-token-Zq81xW",
    "forward": "fwd-token-Kp27sV",
    "db_password": "dbpass-Hx55pQ",
    "admin_password": "adminpass-Lm09tR",
    "cursor": "cursor-secret-Yt44nB-0123456789",
    "nats_password": "natspass-Ww12cC",
}


async def test_config_redacts_every_secret_in_response_and_logs(database, data_dir, monkeypatch):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    manager_url = database.manager_url.replace("gordon_manager@", f"gordon_manager:{SECRETS['db_password']}@")
    env = {
        "GORDON_DATABASE_URL": manager_url,
        "GORDON_DATABASE_ADMIN_URL": f"postgresql://postgres:{SECRETS['admin_password']}@db.internal:5432/gordon",
        "GORDON_MANAGER_OPERATOR_TOKEN": SECRETS["operator"],
        "GORDON_MANAGER__GORDON_RISK_OPERATOR_TOKEN": SECRETS["forward"],
        "GORDON_MANAGER_CURSOR_SECRET": SECRETS["cursor"],
        "GORDON_BUS_NATS_URL": f"nats://gm:{SECRETS['nats_password']}@127.0.0.1:4222",
        "GORDON_MANAGER__GORDON_RISK_URL": "http://127.0.0.1:1",
        "GORDON_MANAGER_DATA_DIR": str(data_dir),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        settings = Settings()
        assert settings.gordon_manager.gordon_risk_operator_token.get_secret_value() == SECRETS["forward"]
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
                assert (await http.get("/config")).status_code == 401
                assert (await http.get("/config", headers={"X-Operator-Token": "wrong"})).status_code == 403
                response = await http.get("/config", headers={"X-Operator-Token": SECRETS["operator"]})
                await http.get("/healthz")
                await http.get("/nope")
    finally:
        root.removeHandler(handler)
    assert response.status_code == 200
    text = response.text
    logs = stream.getvalue()
    assert logs, "expected log lines to inspect"
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} leaked in /config"
        assert secret not in logs, f"{name} leaked in the logs"
    config = response.json()["config"]
    assert config["operatorToken"] == "***"
    assert config["gordonManager"]["gordonRiskOperatorToken"] == "***"
    assert config["cursorSecret"] == "***"
    assert ":***@" in config["databaseUrl"] and ":***@" in config["databaseAdminUrl"]
    assert config["busNatsUrl"] == "nats://gm:***@127.0.0.1:4222"
    assert config["gordonManager"]["gordonRiskUrl"] == "http://127.0.0.1:1"


def test_unset_secrets_are_null_and_plain_values_kept(database, data_dir):
    settings = make_settings(database, data_dir, operator_token=None)
    dump = redacted_config(settings)
    assert dump["operatorToken"] is None
    assert dump["bindAddr"] == ":8083"
    assert dump["runtime"] == "process"


def test_secret_without_url_shape_is_masked():
    settings = Settings(database_url=SecretStr("not-a-url-but-secret"), data_dir="/tmp/x")
    assert redacted_config(settings)["databaseUrl"] == "***"


async def test_operator_token_generated_when_unset_and_never_logged(database, data_dir):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        app = create_app(make_settings(database, data_dir, operator_token=None))
        async with app.router.lifespan_context(app):
            pass
    finally:
        logging.getLogger().removeHandler(handler)
    token_file = data_dir / "operator-token"
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert token not in stream.getvalue()
    assert str(token_file) in stream.getvalue()


@pytest.mark.parametrize("value, secret, kept", [
    ("nats://TOKEN-a1b2c3@nats.internal:4222", "TOKEN-a1b2c3", "nats://***@nats.internal:4222"),
    ("nats://gm:pw-Zz9@127.0.0.1:4222", "pw-Zz9", "nats://gm:***@127.0.0.1:4222"),
    ("http://risk:8080/v1?token=tok-Qq1&region=eu", "tok-Qq1", "http://risk:8080/v1?token=***&region=eu"),
    ("http://h/x?api_key=k-1&X-Amz-Signature=s-2&sslpassword=p-3", "k-1", None),
    ("postgresql:///gordon?user=admin&password=pw-Ab1&host=/run/pg", "pw-Ab1",
     "postgresql:///gordon?user=admin&password=***&host=/run/pg"),
    ("host=/run/pg user=admin password=pw-Cd2 dbname=gordon", "pw-Cd2",
     "host=/run/pg user=admin password=*** dbname=gordon"),
    ("host=db password='pw Ef3 with space' sslmode=require", "Ef3", "host=db password=*** sslmode=require"),
    ("postgresql://u:pw-Gh4@[::1]:5432/db", "pw-Gh4", "postgresql://u:***@[::1]:5432/db"),
])
def test_every_credential_form_is_redacted(value, secret, kept):
    out = redact_text(value)
    assert secret not in out
    if kept is not None:
        assert out == kept
    for other in ("s-2", "p-3"):
        assert other not in out


def test_non_secret_settings_are_redacted_too(database, data_dir):
    settings = make_settings(database, data_dir, bus_nats_url="nats://TOKEN-x9y8@127.0.0.1:4222")
    assert redacted_config(settings)["busNatsUrl"] == "nats://***@127.0.0.1:4222"
