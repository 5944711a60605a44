"""Whether the W&B server answers, found out in seconds and without wandb (whose ``wandb.init``
retries for 90 s, then raises a ``CommError``):

    wandb_host()                          # ("api.wandb.ai", 443), or $WANDB_BASE_URL's
    why_unreachable("api.wandb.ai", 443)  # None if it answers, else e.g. "connection refused"

"Answers" means: a TCP connection opens and the server speaks within the time limit (a TLS
handshake completes for an https URL; for http, the first byte of the reply to a ``HEAD /``
comes back). Where an http(s) proxy applies (``$HTTPS_PROXY`` ..., not bypassed by
``$NO_PROXY``), the proxy is asked instead, as wandb itself would go through it. Only
connections are made: no credentials are sent and certificates are not checked (wandb checks
them itself and says so when one is wrong).

With ``WANDB_MODE=online`` and an API key in the environment, importing this module starts
that probe at once, in the background, so that the ``ram`` command (which imports it before
torch) has the answer when it has read its config, seconds later; the answer is used once,
within a minute.
"""
from __future__ import annotations

import os
import socket
import ssl
import threading
import time
import urllib.request
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.wandb.ai"
TIMEOUT = 2.0  # seconds for the W&B server to answer
EARLY_USE = 60.0  # seconds an early answer stays usable


def wandb_host() -> Tuple[str, int]:
    """(host, port) of the W&B server: ``$WANDB_BASE_URL``, else api.wandb.ai:443."""
    url = urlsplit(os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL)
    return url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)


def _uses_tls() -> bool:
    return urlsplit(os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).scheme != "http"


def proxy_for(host: str, tls: bool) -> Optional[Tuple[str, int]]:
    """(host, port) of the proxy that connections to ``host`` go through, if any."""
    if urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get("https" if tls else "http")
    if not proxy:
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname, parts.port or 8080) if parts.hostname else None


def _answers(host: str, port: int, tls: bool, timeout: float) -> None:
    """Returns if ``host:port`` answers within ``timeout`` s (per step), else raises OSError."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # only "does it answer": wandb checks the certificate
            try:
                context.wrap_socket(connection, server_hostname=host).close()
            except ssl.SSLEOFError:
                raise ConnectionError("closed the connection without answering") from None
            except ssl.SSLError:  # it answered, though not as wandb expects: wandb will say what is wrong
                pass
            return
        connection.sendall(f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        if not connection.recv(1):
            raise ConnectionError("closed the connection without answering")


class _Probe:
    """One attempt to reach a server, in a daemon thread (name resolution ignores socket timeouts)."""

    def __init__(self, host: str, port: int, tls: bool, timeout: float) -> None:
        self.timeout, self.started = timeout, time.monotonic()
        self.proxy = proxy_for(host, tls)
        self.outcome: List[str] = []
        self.thread = threading.Thread(target=self._attempt, args=(host, port, tls), daemon=True)
        self.thread.start()

    def _attempt(self, host: str, port: int, tls: bool) -> None:
        try:
            if self.proxy:
                _answers(self.proxy[0], self.proxy[1], False, self.timeout)
            else:
                _answers(host, port, tls, self.timeout)
            self.outcome.append("")
        except socket.gaierror:
            self.outcome.append(f"name {self.proxy[0] if self.proxy else host} not resolved")
        except (socket.timeout, TimeoutError):
            self.outcome.append(f"no answer in {self.timeout:g} s")
        except OSError as error:  # refused, unreachable, reset, closed
            self.outcome.append((error.strerror or str(error)).lower())

    def result(self) -> Optional[str]:
        """Waits until it answered, failed, or ``timeout`` s after its start; see :func:`why_unreachable`."""
        self.thread.join(max(0.0, self.started + self.timeout - time.monotonic()))
        if not self.outcome:
            return f"no answer in {self.timeout:g} s"
        if self.outcome[0] and self.proxy:
            return f"proxy {self.proxy[0]}:{self.proxy[1]}: {self.outcome[0]}"
        return self.outcome[0] or None


_early: Dict[Tuple[str, int, bool, float], _Probe] = {}


def why_unreachable(host: str, port: int, timeout: float = TIMEOUT, tls: Optional[bool] = None) -> Optional[str]:
    """None if the W&B server at ``host:port`` (or the proxy in front of it) answers within
    ``timeout`` seconds in all, else why not, e.g. ``"connection refused"``, ``"no answer in 2 s"``.

    Args:
        tls: whether the server speaks https (default: as ``$WANDB_BASE_URL`` says).
    """
    tls = _uses_tls() if tls is None else tls
    probe = _early.pop((host, port, tls, timeout), None)
    if probe is None or time.monotonic() - probe.started > EARLY_USE:
        probe = _Probe(host, port, tls, timeout)
    return probe.result()


def _probe_early() -> None:
    """With ``WANDB_MODE=online`` and a key in the environment, start probing now (module docstring)."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("online", "run") and (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE")):
        host, port = wandb_host()
        tls = _uses_tls()
        _early[(host, port, tls, TIMEOUT)] = _Probe(host, port, tls, TIMEOUT)


def can_reach(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """True if the W&B server at ``host:port`` answers within ``timeout`` s (see :func:`why_unreachable`)."""
    return why_unreachable(host, port, timeout) is None


_probe_early()
