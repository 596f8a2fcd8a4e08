"""Secrets kept out of records: the redaction rules, config.yaml's `${VAR}` references, the backend's
error texts and provenance, the generation writer, and the report as a second line of defence."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from harness import redact
from harness.config import OpenAIModel, SamplingConfig, load_config, resolved_dict
from harness.errors import UserInputError
from harness.records import GenerationRow
from harness.rundir import GenerationWriter, new_run_dir, write_generation_provenance
from tests.conftest import REPO

KEY = "sk-live-0123456789abcdef"
PASSWORD = "pw-Xy7-secret"
URL = f"http://alice:{PASSWORD}@127.0.0.1:8123/v1"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
GREEDY = REPO / "results" / "published" / "smollm2-135m-instruct-humaneval-greedy"


# -- the rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url,expected",
    [
        (URL, "http://***@127.0.0.1:8123/v1"),
        ("https://u:p@ss@host.test/a/b?x=1", "https://***@host.test/a/b?x=1"),  # an unescaped "@" in the password
        ("https://ghp_0123456789abcdefghijklmn@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://${CREDS}@host.test/v1", "http://${CREDS}@host.test/v1"),  # a reference is not a secret
    ],
)
def test_redact_url_masks_userinfo_and_keeps_the_rest(url, expected):
    assert redact.redact_url(url) == expected


@pytest.mark.parametrize(
    "text,secret,kept",
    [
        ('{"headers": {"Authorization": "Bearer sk-abc.DEF_123"}}', "sk-abc.DEF_123", '"Authorization": "Bearer ***"'),
        ("{'authorization': 'Basic dXNlcjpwdw=='}", "dXNlcjpwdw==", "'authorization': 'Basic ***'"),
        ('{"x-api-key": "k-777-777"}', "k-777-777", '"x-api-key": "***"'),
        ("AUTHORIZATION: Bearer tok-999\r\nHost: h", "tok-999", "AUTHORIZATION: Bearer ***\r\nHost: h"),
        ("api-key: zz-4242, then more", "zz-4242", "api-key: ***, then more"),
        ('{"m": "{\\"Api-Key\\": \\"esc-4242\\"}"}', "esc-4242", '\\"Api-Key\\": \\"***\\"'),
        ("token Bearer abc.def-ghi was refused", "abc.def-ghi", "Bearer *** was refused"),
        ("GET http://h.test/v1?api_key=qq-7788&x=1", "qq-7788", "?api_key=***&x=1"),
        (f"proxy said {URL} failed", PASSWORD, "proxy said http://***@127.0.0.1:8123/v1 failed"),
    ],
)
def test_redact_text_masks_header_echoes_urls_and_query_keys(text, secret, kept):
    out = redact.redact_text(text)
    assert secret not in out and kept in out


def test_known_values_are_masked_anywhere_and_short_ones_are_left():
    secrets = [*redact.backend_secrets(URL, None), KEY]
    text = f"key {KEY} rejected; user alice with {PASSWORD} ({BASIC}); Basic auth"
    out = redact.redact_text(text, secrets)
    assert KEY not in out and PASSWORD not in out and BASIC not in out
    assert out.startswith("key *** rejected; user alice with") and out.endswith("Basic auth")
    assert redact.redact_text("a pw b", ["pw"]) == "a pw b"  # too short to mask in free text


def test_secrets_in_recorded_data_include_url_credentials_and_the_named_key(monkeypatch):
    monkeypatch.setenv("REDACT_TEST_KEY", KEY)
    found = redact.secrets_in({"model": {"base_url": URL, "api_key_env": "REDACT_TEST_KEY"}, "x": [f"see {URL}"]})
    assert {KEY, PASSWORD, BASIC} <= set(found)
    assert redact.has_credentials(URL) and not redact.has_credentials("ssh://git@github.com/o/r.git")


# -- config.yaml ----------------------------------------------------------------------------------
def _config_file(tmp_path: Path, base_url: str) -> Path:
    cfg = {
        "model": {"backend": "openai", "name": "m", "model": "m", "base_url": base_url, "api_key_env": "K"},
        "benchmark": {"name": "humaneval", "limit": 1},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_yaml_keeps_the_reference_and_resume_expands_it_again(tmp_path, monkeypatch):
    monkeypatch.setenv("REDACT_TEST_URL", URL)
    cfg = load_config(_config_file(tmp_path, "${REDACT_TEST_URL}"))
    assert cfg.model.base_url == URL  # the backend gets the credentials
    run_dir = new_run_dir(resolved_dict(cfg), "m", tmp_path / "out", "r")
    text = (run_dir / "config.yaml").read_text()
    assert PASSWORD not in text and "${REDACT_TEST_URL}" in text
    assert load_config(run_dir / "config.yaml").model.base_url == URL  # what --resume loads
    # Without credentials the value is recorded as expanded, as before (resume reaches the same endpoint).
    monkeypatch.setenv("REDACT_TEST_URL", "http://127.0.0.1:8123/v1")
    data = resolved_dict(load_config(_config_file(tmp_path, "${REDACT_TEST_URL}")))
    assert data["model"]["base_url"] == "http://127.0.0.1:8123/v1"


def test_credentials_written_into_the_config_are_refused(tmp_path):
    cfg = load_config(_config_file(tmp_path, URL))
    with pytest.raises(UserInputError, match=r"model\.base_url: a URL with credentials"):
        resolved_dict(cfg)
    with pytest.raises(UserInputError, match="URL credentials"):
        new_run_dir({"model": {"base_url": URL}}, "m", tmp_path / "out", "r")
    assert not (tmp_path / "out").exists()


# -- the backend and the run directory --------------------------------------------------------------
class _Echo(BaseHTTPRequestHandler):
    """Answers every request with a 401 whose body echoes the Authorization header and the key."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        body = json.dumps({"error": f"key {auth.split()[-1]} is not valid", "headers": {"authorization": auth}})
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


def test_backend_masks_its_key_and_url_in_errors_and_provenance(monkeypatch):
    from harness.models.base import GenerationFailed
    from harness.models.openai_api import OpenAIBackend

    monkeypatch.setenv("REDACT_TEST_KEY", KEY)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    try:
        for url, secret in ((f"http://{host}/v1", KEY), (f"http://alice:{PASSWORD}@{host}/v1", BASIC)):
            cfg = OpenAIModel(backend="openai", name="m", model="m", base_url=url, api_key_env="REDACT_TEST_KEY")
            backend = OpenAIBackend(cfg)
            with pytest.raises(GenerationFailed) as err:
                backend.chat([{"role": "user", "content": "hi"}], SamplingConfig())
            backend.close()
            assert secret not in str(err.value) and str(err.value).startswith('HTTP 401: {"error": "key *** is')
            assert backend.provenance()["base_url"] == f"http://{'***@' if '@' in url else ''}{host}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_generation_rows_and_provenance_are_written_masked(tmp_path):
    writer = GenerationWriter(tmp_path)
    error = f'HTTP 401: {{"authorization": "Bearer {KEY}", "url": "{URL}"}}'
    writer.write([GenerationRow("t", 0, None, error=error)])
    writer.close()
    write_generation_provenance(tmp_path, {"base_url": URL, "nested": [{"h": f"Authorization: Bearer {KEY}"}]})
    text = (tmp_path / "generations.jsonl").read_text() + (tmp_path / "generation.json").read_text()
    assert KEY not in text and PASSWORD not in text
    assert "127.0.0.1:8123/v1" in text and json.loads((tmp_path / "generations.jsonl").read_text())["error"]


# -- the report of a run directory written before redaction --------------------------------------------
def test_report_of_an_old_run_directory_publishes_no_secret(tmp_path, monkeypatch):
    from harness.report.site import ReportRequest, build

    run = tmp_path / "old-run"
    shutil.copytree(GREEDY, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["engine_args"] = {"api_key_env": "REDACT_TEST_KEY", "hub": URL}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    results = json.loads((run / "results.json").read_text())
    results["provenance"]["model"]["base_url"] = URL
    results["provenance"]["model"]["last_error"] = f'HTTP 401: {{"Authorization": "Basic {BASIC}"}} key {KEY}'
    (run / "results.json").write_text(json.dumps(results))
    monkeypatch.setenv("REDACT_TEST_KEY", KEY)
    build(ReportRequest(run_paths=[run], out=tmp_path / "site"))
    files = [p for p in (tmp_path / "site").rglob("*") if p.is_file()]
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    for secret in (KEY, PASSWORD, BASIC):
        assert secret not in text, [p.name for p in files if secret in p.read_text(encoding="utf-8")]
    assert "http://***@127.0.0.1:8123/v1" in text  # where it pointed is still published
