"""The URL rule for media a platform names by URL (norbit_connectors._urls): pure, no request is made."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from norbit_connectors._urls import address_allowed, judge_url, origin

GRAPH = "https://graph.facebook.com/v21.0"
EMULATOR = "http://127.0.0.1:8123/v21.0"
LOOKASIDE = "https://lookaside.fbsbx.com"

LOCAL_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::1/128",
        "::/128",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
        "2001:db8::/32",
    )
]


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example.com/file",
        "file:///proc/self/environ",
        "ftp://cdn.example.com/file",
        "gopher://127.0.0.1:6379/_",
        "https://127.0.0.1/x",
        "https://127.1/x",
        "https://localhost/x",
        "https://api.localhost/x",
        "https://[::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/x",
        "https://192.168.0.1/x",
        "https://172.20.0.1/x",
        "https://0.0.0.0/x",
        "https://224.0.0.1/x",
        "https://user:pass@cdn.example.com/x",
        "https://cdn.example.com@127.0.0.1/x",
        "https://cdn.example.com\\@127.0.0.1/x",
        "https://cdn.example.com/x y",
        "https://cdn.example.com/\nx",
        "//cdn.example.com/x",
        "/relative/path",
        "",
        "https://",
        "https://cdn.example.com:99999/x",
    ],
)
def test_refused(url: str) -> None:
    verdict = judge_url(url, trusted=[GRAPH], credentials_for=[GRAPH, LOOKASIDE])
    assert not verdict.allowed and verdict.reason and not verdict.credentials


def test_public_https_is_allowed_and_resolved_but_gets_no_token() -> None:
    verdict = judge_url("https://scontent.xx.fbcdn.net/v/t1/abc.jpg?x=1", trusted=[GRAPH], credentials_for=[GRAPH])
    assert verdict.allowed and not verdict.credentials and not verdict.trusted
    assert (verdict.resolve, verdict.port) == ("scontent.xx.fbcdn.net", 443)


def test_the_token_goes_only_to_the_named_origins() -> None:
    assert judge_url(f"{GRAPH}/123", trusted=[GRAPH], credentials_for=[GRAPH]).credentials
    assert judge_url(f"{LOOKASIDE}/whatsapp_business/attachments/?mid=1", credentials_for=[LOOKASIDE]).credentials
    for other in (
        "https://graph.facebook.com.evil.example/x",
        "https://evil.example/graph.facebook.com",
        "https://graph.facebook.com:8443/x",
    ):
        assert not judge_url(other, trusted=[GRAPH], credentials_for=[GRAPH, LOOKASIDE]).credentials
    assert not judge_url("http://lookaside.fbsbx.com/x", credentials_for=[LOOKASIDE]).allowed


def test_the_configured_origin_is_trusted_even_on_loopback() -> None:
    verdict = judge_url("http://127.0.0.1:8123/media-download/1", trusted=[EMULATOR], credentials_for=[EMULATOR])
    assert verdict.allowed and verdict.trusted and verdict.credentials and verdict.resolve is None
    assert not judge_url("http://127.0.0.1:8124/x", trusted=[EMULATOR]).allowed  # another port: not the origin
    assert not judge_url("https://127.0.0.1:8123/x", trusted=[EMULATOR]).allowed  # another scheme


def test_origin() -> None:
    assert origin("HTTPS://Graph.Facebook.com:443/v21.0/x") == "https://graph.facebook.com"
    assert origin("http://127.0.0.1:80/") == "http://127.0.0.1"
    assert origin("http://[::1]:8080/x") == "http://[::1]:8080"
    assert origin("/x") is None and origin("https://h:bad/") is None


@given(st.ip_addresses())
def test_address_allowed_refuses_every_local_range(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    if any(ip.version == n.version and ip in n for n in LOCAL_NETWORKS):
        assert not address_allowed(str(ip))
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if mapped is not None:
        assert address_allowed(str(ip)) == address_allowed(str(mapped))
    if address_allowed(str(ip)):
        assert not ip.is_multicast and not ip.is_loopback and not ip.is_link_local and not ip.is_unspecified


@given(st.ip_addresses(v=4))
def test_ipv4_mapped_and_nat64_forms_judge_like_the_ipv4_address(ip: ipaddress.IPv4Address) -> None:
    expected = address_allowed(str(ip))
    assert address_allowed(f"::ffff:{ip}") == expected
    assert address_allowed(str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(ip)))) == expected


urls = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, host, rest: f"{scheme}://{host}{rest}",
        st.sampled_from(["http", "https", "HTTPS", "file", "ftp", ""]),
        st.one_of(st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)), st.text(max_size=20)),
        st.text(max_size=20),
    ),
)


@given(urls)
def test_judge_url_never_raises_and_never_lets_local_or_plain_urls_through(url: str) -> None:
    verdict = judge_url(url, trusted=[EMULATOR], credentials_for=[GRAPH])
    if not verdict.allowed:
        assert verdict.reason and not verdict.credentials
        return
    if verdict.trusted:
        assert origin(url) == origin(EMULATOR)
        return
    assert url.lower().startswith("https://")
    assert verdict.credentials == (origin(url) == origin(GRAPH))
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    try:
        ip = ipaddress.ip_address(
            host.strip("[]").rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
        )
    except ValueError:
        return
    assert address_allowed(str(ip))


EMBEDDING_PREFIXES = ["::", "::ffff:0:0", "::ffff:0:0:0", "64:ff9b::", "64:ff9b:1::"]


@given(st.ip_addresses(v=4), st.sampled_from(EMBEDDING_PREFIXES))
@example(ipaddress.IPv4Address("127.0.0.1"), "::")
@example(ipaddress.IPv4Address("127.0.0.1"), "::ffff:0:0:0")
@example(ipaddress.IPv4Address("127.0.0.1"), "64:ff9b:1::")
@example(ipaddress.IPv4Address("169.254.169.254"), "::ffff:0:0:0")
def test_every_form_embedding_an_ipv4_address_judges_like_it(ip: ipaddress.IPv4Address, prefix: str) -> None:
    embedded = ipaddress.IPv6Address(int(ipaddress.IPv6Address(prefix)) | int(ip))
    assert address_allowed(str(embedded)) == address_allowed(str(ip))
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80) | 1)
    assert address_allowed(str(sixtofour)) == address_allowed(str(ip))


@pytest.mark.parametrize(
    "address",
    [
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::ffff:0:7f00:1",  # SIIT 127.0.0.1
        "::ffff:0:a9fe:a9fe",  # SIIT 169.254.169.254
        "64:ff9b:1::7f00:1",  # local-use NAT64 127.0.0.1
        "64:ff9b:1:7f00:1::",  # local-use NAT64 with a /48 prefix: refused whatever it embeds
        "fec0::1",  # site-local
        "fec0:0:0:ffff::1",
        "2001::1",  # Teredo
        "3fff::1",
        "5f00::1",
        "100::1",
        "255.255.255.255",
        "100.64.0.1",
        "198.18.0.1",
        "192.0.0.8",
    ],
)
def test_refused_addresses(address: str) -> None:
    assert not address_allowed(address)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2a03:2880::1"],
)
def test_public_addresses(address: str) -> None:
    assert address_allowed(address)
