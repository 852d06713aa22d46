"""TLS for the node: HTTPS for the API and peers, mutual TLS between nodes.

- ``--tls-cert``/``--tls-key``: the node serves HTTPS (``server_kwargs`` for
  uvicorn) and its node-to-node client (the pooled aiohttp session, see
  ``client_context``) verifies peers with the system CAs.
- ``--tls-ca`` as well: the server asks every client for a certificate and
  verifies one that is presented against the CA (``CERT_OPTIONAL``: a client
  without a certificate can still use the public API), and the node-to-node
  client verifies peers against that CA and presents the node's own
  certificate: mutual TLS between nodes.  A node certificate then needs the
  ``serverAuth`` and ``clientAuth`` extended key usages (or no EKU at all),
  and a subject alternative name for the host of the node's own peer URL.
- ``check(config)`` refuses, with a one-line ``ConfigError``, what cannot
  work: peer URLs whose scheme does not match (``https://`` exactly when TLS
  is on), unreadable certificate/key/CA files, a key that does not match the
  certificate, and a certificate that its peers would refuse (checked by a
  TLS handshake with itself, in memory, against the node's own peer URL).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rakit.config import ConfigError, NodeConfig

__all__ = ["check", "check_peer_schemes", "client_context", "server_context", "server_kwargs"]


def enabled(config: NodeConfig) -> bool:
    return config.tls_cert is not None


def check_peer_schemes(peers: dict[str, str], tls_on: bool) -> None:
    """Every peer URL must be ``https://`` when TLS is on and ``http://`` when it is off."""
    want = "https" if tls_on else "http"
    for node_id, url in sorted(peers.items()):
        scheme = urlsplit(url).scheme
        if scheme == want:
            continue
        if tls_on:
            raise ConfigError(
                f"--tls-cert is set but --peers gives {node_id} as {url}: with TLS on every peer URL must be https://"
            )
        raise ConfigError(
            f"--peers gives {node_id} as {url} but TLS is off: "
            "pass --tls-cert and --tls-key, or give every peer as http://"
        )


# TLS 1.2 suites: forward-secret AEAD only (no CBC, no SHA-1 MACs); TLS 1.3's are all AEAD already.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


def server_kwargs(config: NodeConfig) -> dict[str, Any]:
    """The ``uvicorn.Config`` TLS arguments ({} when TLS is off)."""
    if not enabled(config):
        return {}
    kwargs: dict[str, Any] = {
        "ssl_certfile": str(config.tls_cert),
        "ssl_keyfile": str(config.tls_key),
        "ssl_ciphers": CIPHERS,
    }
    if config.tls_ca is not None:
        kwargs["ssl_ca_certs"] = str(config.tls_ca)
        kwargs["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return kwargs


def server_context(config: NodeConfig) -> ssl.SSLContext:
    """The context the server uses (what uvicorn builds from ``server_kwargs``)."""
    assert config.tls_cert is not None and config.tls_key is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers(CIPHERS)
    _load_chain(ctx, config.tls_cert, config.tls_key)
    if config.tls_ca is not None:
        _load_ca(ctx, config.tls_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The context of the node-to-node client; None when TLS is off (plain http peers).

    It verifies peers (certificate and host name) against ``--tls-ca``, else
    the system CAs, and presents the node's own certificate.
    """
    if not enabled(config):
        return None
    assert config.tls_cert is not None and config.tls_key is not None
    if config.tls_ca is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # Trust only the cluster's CA: a certificate from some public CA is no cluster member.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_ca(ctx, config.tls_ca)
    ctx.set_ciphers(CIPHERS)
    _load_chain(ctx, config.tls_cert, config.tls_key)
    return ctx


def check(config: NodeConfig) -> None:
    """Refuse a TLS setup that cannot work; ``ConfigError`` with one line."""
    check_peer_schemes(config.peers, enabled(config))
    if not enabled(config):
        return
    server = server_context(config)
    client = client_context(config)
    assert client is not None
    _self_handshake(server, client, urlsplit(config.url).hostname or "", config)


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        raise ConfigError(f"cannot use --tls-cert {cert} with --tls-key {key}: {_reason(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read --tls-cert {cert} / --tls-key {key}: {exc.strerror or exc}") from None


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except ssl.SSLError as exc:
        raise ConfigError(f"cannot use --tls-ca {ca}: {_reason(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read --tls-ca {ca}: {exc.strerror or exc}") from None


def _reason(exc: ssl.SSLError) -> str:
    message = getattr(exc, "verify_message", None)
    if message:
        return str(message).rstrip(".")
    if not exc.reason or exc.reason == "PEM_LIB":
        return "not a PEM certificate and its private key"
    return str(exc.reason).replace("_", " ").lower()


def _self_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str, config: NodeConfig) -> None:
    """A TLS handshake of this node's client with this node's server, in memory.

    Peers connect to ``host`` (this node's URL in --peers) and verify the
    certificate as ``client_ctx`` does; with ``--tls-ca`` they also verify
    the certificate this node presents as a client.  Failing here means the
    cluster could never connect to (or accept) this node.
    """
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=host)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError as exc:
                raise ConfigError(_refusal(name, exc, host, config)) from None
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        if all(done.values()):
            break
    else:
        raise ConfigError(
            f"--tls-cert {config.tls_cert}: a TLS handshake with this node's own settings did not complete"
        )
    if config.tls_ca is not None:
        # TLS 1.3: the server judges the client certificate after the client is done.
        try:
            server.read()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        except ssl.SSLError as exc:
            raise ConfigError(_refusal("server", exc, host, config)) from None
        if server.getpeercert() is None:
            raise ConfigError(f"--tls-cert {config.tls_cert} was not presented as a client certificate")


def _refusal(side: str, exc: ssl.SSLError, host: str, config: NodeConfig) -> str:
    trust = f"--tls-ca {config.tls_ca}" if config.tls_ca is not None else "the system CAs"
    if side == "client":
        return (
            f"peers would refuse --tls-cert {config.tls_cert} for {host} (this node's URL in --peers), "
            f"verified against {trust}: {_reason(exc)}"
        )
    reason = _reason(exc)
    hint = " (it needs the clientAuth extended key usage)" if "purpose" in reason else ""
    return (
        f"peers would refuse --tls-cert {config.tls_cert} as this node's client certificate, "
        f"verified against {trust}: {reason}{hint}"
    )
