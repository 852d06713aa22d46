"""TLS configuration: peer URL schemes, certificate checks, the contexts built."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from rakit.client.runner import ssl_verify
from rakit.config import ConfigError, NodeConfig, build_config
from rakit.security import tls
from tlscerts import make_ca

HTTPS_PEERS = "node1=https://127.0.0.1:9001,node2=https://127.0.0.1:9002,node3=https://127.0.0.1:9003"
HTTP_PEERS = HTTPS_PEERS.replace("https://", "http://")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    other = make_ca(folder, "other-ca")
    files: dict[str, Path] = {"ca": ca.path, "other_ca": other.path}
    files["cert"], files["key"] = ca.issue(folder, "node1")
    files["cert2"], files["key2"] = ca.issue(folder, "node2")
    files["wrong_host_cert"], files["wrong_host_key"] = ca.issue(folder, "elsewhere", hosts=("10.9.9.9", "elsewhere"))
    files["server_only_cert"], files["server_only_key"] = ca.issue(
        folder, "server-only", usages=(ExtendedKeyUsageOID.SERVER_AUTH,)
    )
    files["foreign_cert"], files["foreign_key"] = other.issue(folder, "foreign")
    files["garbage"] = folder / "garbage.pem"
    files["garbage"].write_text("not a certificate\n")
    return files


def config(peers: str = HTTPS_PEERS, **files: Path | None) -> NodeConfig:
    # Mutual TLS needs the cluster secret too (the secret authenticates node-to-node calls).
    return build_config(
        node_id="node1",
        host="127.0.0.1",
        port=None,
        peers=peers,
        redis_url="redis://127.0.0.1:6379/0",
        data_dir="/tmp/unused",
        cluster_secret="s" * 20,
        **{k: (str(v) if v is not None else None) for k, v in files.items()},
    )


def tls_files(
    pki: dict[str, Path], cert: str = "cert", key: str = "key", ca: str | None = "ca"
) -> dict[str, Path | None]:
    return {"tls_cert": pki[cert], "tls_key": pki[key], "tls_ca": pki[ca] if ca else None}


# -- peer URL schemes ----------------------------------------------------------------------------------------


def test_http_peer_with_tls_on_is_refused(pki):
    mixed = HTTPS_PEERS.replace("node2=https://", "node2=http://")
    with pytest.raises(ConfigError, match=r"--tls-cert is set but --peers gives node2 as http://127\.0\.0\.1:9002"):
        tls.check(config(mixed, **tls_files(pki)))
    with pytest.raises(ConfigError, match="every peer URL must be https://"):
        tls.check(config(HTTP_PEERS, **tls_files(pki)))


def test_https_peer_with_tls_off_is_refused():
    with pytest.raises(ConfigError, match=r"--peers gives node1 as https://127\.0\.0\.1:9001 but TLS is off"):
        tls.check(config(HTTPS_PEERS))
    mixed = HTTP_PEERS.replace("node3=http://", "node3=https://")
    with pytest.raises(ConfigError, match="node3 as https://"):
        tls.check(config(mixed))


def test_consistent_setups_pass(pki):
    tls.check(config(HTTP_PEERS))  # no TLS at all
    tls.check(config(HTTPS_PEERS, **tls_files(pki)))  # mutual TLS
    tls.check(
        config(HTTPS_PEERS, **tls_files(pki, "cert2", "key2"))
    )  # any certificate the CA signed, valid for the host


def test_messages_are_one_line(pki):
    for bad in (config(HTTP_PEERS, **tls_files(pki)), config(HTTPS_PEERS)):
        with pytest.raises(ConfigError) as info:
            tls.check(bad)
        assert "\n" not in str(info.value)


# -- certificate checks --------------------------------------------------------------------------------------


def test_key_not_matching_the_certificate(pki):
    with pytest.raises(ConfigError, match="cannot use --tls-cert .* with --tls-key .*: key values mismatch"):
        tls.check(config(**tls_files(pki, "cert", "key2")))


def test_unreadable_pem_files(pki):
    with pytest.raises(ConfigError, match="cannot use --tls-cert"):
        tls.check(config(**tls_files(pki, "garbage", "key")))
    with pytest.raises(ConfigError, match="cannot use --tls-ca"):
        tls.check(config(**tls_files(pki, ca="garbage")))


def test_certificate_not_valid_for_the_node_url(pki):
    with pytest.raises(ConfigError, match=r"peers would refuse .* for 127\.0\.0\.1 .*(mismatch|not valid)"):
        tls.check(config(**tls_files(pki, "wrong_host_cert", "wrong_host_key")))


def test_certificate_from_another_ca(pki):
    with pytest.raises(ConfigError, match="peers would refuse .* verified against --tls-ca"):
        tls.check(config(**tls_files(pki, "foreign_cert", "foreign_key")))


def test_private_certificate_without_ca_fails_against_the_system_cas(pki):
    with pytest.raises(ConfigError, match="verified against the system CAs"):
        tls.check(config(**tls_files(pki, ca=None)))


def test_mutual_tls_needs_the_client_auth_usage(pki):
    with pytest.raises(ConfigError, match="as this node's client certificate.*clientAuth"):
        tls.check(config(**tls_files(pki, "server_only_cert", "server_only_key")))


# -- what the server and the node-to-node client are given ---------------------------------------------------


def test_server_kwargs(pki):
    assert tls.server_kwargs(config(HTTP_PEERS)) == {}
    plain = tls.server_kwargs(config(**tls_files(pki, ca=None)))
    assert plain == {"ssl_certfile": str(pki["cert"]), "ssl_keyfile": str(pki["key"]), "ssl_ciphers": tls.CIPHERS}
    server = tls.server_context(config(**tls_files(pki)))
    assert not [c["name"] for c in server.get_ciphers() if "CBC" in c["name"] or c["name"].endswith("SHA")]
    mutual = tls.server_kwargs(config(**tls_files(pki)))
    assert mutual["ssl_ca_certs"] == str(pki["ca"]) and mutual["ssl_cert_reqs"] == ssl.CERT_OPTIONAL


def test_client_context(pki):
    assert tls.client_context(config(HTTP_PEERS)) is None
    ctx = tls.client_context(config(**tls_files(pki)))
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    # Only the cluster CA is trusted with --tls-ca, not the system's.
    assert [c["subject"] for c in ctx.get_ca_certs()] == [
        ((("organizationName", "rakit tests"),), (("commonName", "rakit-test-ca"),))
    ]
    system = tls.client_context(config(**tls_files(pki, ca=None)))
    assert system is not None and system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname


async def test_node_client_presents_its_certificate_and_verifies_the_server(pki):
    """Mutual TLS: a server that *requires* a client certificate sees node1's; node1 checks node2's."""
    node2 = config(**tls_files(pki, "cert2", "key2"))
    server_ctx = tls.server_context(node2)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[object] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        client_ctx = tls.client_context(config(**tls_files(pki)))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        assert await reader.read() == b"ok"
        server_cert = writer.get_extra_info("peercert")
        writer.close()
        assert dict(x[0] for x in server_cert["subject"])["commonName"] == "node2"
        assert dict(x[0] for x in seen[0]["subject"])["commonName"] == "node1"  # type: ignore[index]
        # A client trusting another CA refuses node2.
        stranger = ssl.create_default_context(cafile=str(pki["other_ca"]))
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=stranger)
    finally:
        server.close()
        await server.wait_closed()


# -- the Python client's verify= ----------------------------------------------------------------------------


def test_client_verify_option(pki, tmp_path):
    assert ssl_verify(True) is True and ssl_verify(False) is False
    ctx = ssl.create_default_context()
    assert ssl_verify(ctx) is ctx
    from_path = ssl_verify(pki["ca"])
    assert isinstance(from_path, ssl.SSLContext) and from_path.verify_mode == ssl.CERT_REQUIRED
    assert len(ssl_verify(str(pki["ca"])).get_ca_certs()) == 1  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="no such CA file"):
        ssl_verify(tmp_path / "missing.pem")
