"""Whether the W&B server answers, against local sockets only (127.0.0.1): a closed port, a
listener that never answers, an HTTP server, and a proxy in front."""
import contextlib
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from ram_lightning.run import wandb_server
from ram_lightning.run.wandb_server import proxy_for, wandb_host, why_unreachable
from tests.http_server import serve

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_the_host_is_wandb_base_url_or_api_wandb_ai(monkeypatch):
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert wandb_host() == ("api.wandb.ai", 443)
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.local:8080")
    assert wandb_host() == ("wandb.local", 8080)
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.local")
    assert wandb_host() == ("wandb.local", 80)


def test_a_closed_port_is_refused_at_once():
    start = time.monotonic()
    assert why_unreachable("127.0.0.1", closed_port(), timeout=2.0, tls=False) == "connection refused"
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("tls", [False, True])
def test_a_server_that_accepts_and_never_answers_is_unreachable_after_the_timeout(tls):
    with silent_listener() as port:
        start = time.monotonic()
        assert why_unreachable("127.0.0.1", port, timeout=0.5, tls=tls) == "no answer in 0.5 s"
        assert time.monotonic() - start < 1.5


def test_a_server_that_answers_is_reachable(tmp_path: Path):
    with serve(tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        assert why_unreachable("127.0.0.1", port, timeout=2.0, tls=False) is None
        # an https probe of a plain HTTP server: it answered (wandb itself would then say what is wrong)
        assert why_unreachable("127.0.0.1", port, timeout=2.0, tls=True) is None


def test_through_a_proxy_the_proxy_is_asked(monkeypatch):
    port = closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    assert proxy_for("api.wandb.ai", tls=True) == ("127.0.0.1", port)
    assert why_unreachable("api.wandb.ai", 443, timeout=2.0, tls=True) == f"proxy 127.0.0.1:{port}: connection refused"
    monkeypatch.setenv("NO_PROXY", "api.wandb.ai")
    assert proxy_for("api.wandb.ai", tls=True) is None


def test_with_wandb_mode_online_and_a_key_the_probe_starts_early_and_its_answer_is_used_once(monkeypatch):
    monkeypatch.setattr(wandb_server, "TIMEOUT", 0.3)
    monkeypatch.setattr(wandb_server, "_early", {})
    with silent_listener() as port:
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef" * 2 + "01234567")
        monkeypatch.setenv("WANDB_MODE", "offline")
        wandb_server._probe_early()
        assert wandb_server._early == {}  # offline: W&B is not asked
        monkeypatch.setenv("WANDB_MODE", "online")
        wandb_server._probe_early()  # what importing the module does (`ram` imports it before torch)
        time.sleep(0.4)  # the CLI's imports and config parsing
        start = time.monotonic()
        assert why_unreachable("127.0.0.1", port, timeout=0.3) == "no answer in 0.3 s"
        assert time.monotonic() - start < 0.1  # answered already
        assert wandb_server._early == {}  # used once
