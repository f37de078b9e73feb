"""The pinned request connects to an address yet checks the TLS certificate against the host's name: httpcore
passes the ``sni_hostname`` extension as the server name to the TLS layer, which verifies the certificate against
it. Checked here against a local TLS server whose certificate (from a test-only CA) names cdn.example.net."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from norbit_connectors.channels._fetch import MediaClient
from norbit_connectors.exceptions import TransportError

pytestmark = pytest.mark.anyio

# A test-only certificate authority and a certificate it issued for cdn.example.net (valid for a century).
CA = """-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUfsDk1GfnKz2aneaihlMm8AmcWcowCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHVGVzdCBDQTAgFw0yNjEyMDQyMDU3NDBaGA8yMTI2MTExMDIw
NTc0MFowEjEQMA4GA1UEAwwHVGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABEfYkiR4C7w/RELEasoVXkOyvt99a5va0tstf3a9T23uirzm3GPMp0Rn93Is
H1JGcH6ekO/H2fOv7ss3xeztd6qjYzBhMB0GA1UdDgQWBBSq7jrA3leg33IO8tN9
hr5R89mTKTAfBgNVHSMEGDAWgBSq7jrA3leg33IO8tN9hr5R89mTKTAPBgNVHRMB
Af8EBTADAQH/MA4GA1UdDwEB/wQEAwICBDAKBggqhkjOPQQDAgNIADBFAiADZVCV
PGkVlk/24xGTzY2T02mIwVf8SzA8sR10/Glo6wIhAIlElvHkjUz+aH2dL8SSf30T
Hg9X8U60KkYhN4buA0hV
-----END CERTIFICATE-----
"""
CERT = """-----BEGIN CERTIFICATE-----
MIIBvTCCAWOgAwIBAgIUGWMGxRSAR/AhlsRVvpWN6OHVPY0wCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHVGVzdCBDQTAgFw0yNjEyMDQyMDU3NDBaGA8yMTI2MTExMDIw
NTc0MFowGjEYMBYGA1UEAwwPY2RuLmV4YW1wbGUubmV0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEfGyyCwlbIoz6deCNbLeHbzaC4BvAQOd0GRWN7/sJ/xsaMQvA
Canwxa+scIq1EN9DC8jFjbUCVPuhkeSzp0k1tqOBjDCBiTAaBgNVHREEEzARgg9j
ZG4uZXhhbXBsZS5uZXQwCQYDVR0TBAIwADALBgNVHQ8EBAMCBaAwEwYDVR0lBAww
CgYIKwYBBQUHAwEwHQYDVR0OBBYEFBZ8IWrB9JO6eXbSZQOh1kITwWjoMB8GA1Ud
IwQYMBaAFKruOsDeV6Dfcg7y032GvlHz2ZMpMAoGCCqGSM49BAMCA0gAMEUCIQCV
0W0VWM3Og7DXtqH9C7BPRJiy7wrv/gZ3h7IJMkfEZQIgDPX39I9MwLUUkAS7CSiF
B0K9zhDDW/FDiNDvukYTfM8=
-----END CERTIFICATE-----
"""
KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsEt83vxhL1fXZqF3
mUSX2StBuhhodJXIxQJiEE1PpAuhRANCAAR8bLILCVsijPp14I1st4dvNoLgG8BA
53QZFY3v+wn/GxoxC8AJqfDFr6xwirUQ30MLyMWNtQJU+6GR5LOnSTW2
-----END PRIVATE KEY-----
"""


class TlsServer:
    """Serves "ok" over TLS on 127.0.0.1 with the cdn.example.net certificate."""

    def __init__(self, directory: Path) -> None:
        (directory / "cert.pem").write_text(CERT)
        (directory / "key.pem").write_text(KEY)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.hosts: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(5)
                    request = conn.recv(65536)
                    self.hosts += [line for line in request.split(b"\r\n") if line.lower().startswith(b"host:")]
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TlsServer]:
    tls = TlsServer(tmp_path)
    yield tls
    tls.close()


def _client() -> MediaClient:
    return MediaClient("test", verify=ssl.create_default_context(cadata=CA))


async def test_the_certificate_is_checked_against_the_sni_name(server: TlsServer) -> None:
    url = f"https://127.0.0.1:{server.port}/x"
    named = {"sni_hostname": "cdn.example.net"}
    got = await _client().download(url, limit=100, headers={"Host": "cdn.example.net"}, extensions=named)
    assert got == b"ok"
    assert server.hosts == [b"Host: cdn.example.net"]


@pytest.mark.parametrize("sni", ["other.example.net", None])
async def test_a_certificate_for_another_name_is_refused(server: TlsServer, sni: str | None) -> None:
    url = f"https://127.0.0.1:{server.port}/x"
    extensions = {"sni_hostname": sni} if sni else {}
    with pytest.raises(TransportError):
        await _client().download(url, limit=100, headers={"Host": "other.example.net"}, extensions=extensions)
    assert server.hosts == []
