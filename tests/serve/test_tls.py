"""HTTPS: a server on 127.0.0.1 with a certificate this test makes (its own CA), reached with
certificate checking on by ``lepton.Client(ca_bundle=...)`` and httpx; refused without the CA;
and the warning a non-loopback bind without TLS prints."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import httpx
import numpy as np
import pytest

from lepton.errors import ServerUnavailableError
from tests.serve.test_traffic import ROW, registry_store  # noqa: F401


def make_certificates(folder) -> tuple[str, str, str]:
    """(CA certificate, server certificate, server key) as PEM files; the server's is for
    127.0.0.1 and signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, signer, ca: bool, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lepton test CA")])
    ca = cert(ca_name, ca_name, ca_key, ca_key, True)
    server = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name,
                  key, ca_key, False,
                  x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    paths = [folder / "ca.pem", folder / "server.pem", folder / "server.key"]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)


def test_https_with_certificate_checking(registry_store, tmp_path):  # noqa: F811
    from lepton.client import Client
    from lepton.serve.options import ServeOptions
    from lepton.serve.server import BackgroundServer, ServerConfig, build_app, resolve_models

    ca, cert, key = make_certificates(tmp_path)
    config = ServerConfig(models=resolve_models(["iris@production"]),
                          options=ServeOptions(), tls_cert=cert, tls_key=key)
    server = BackgroundServer(build_app(config, store_factory=lambda: registry_store),
                              tls_cert=cert, tls_key=key)
    url = server.start()
    try:
        assert url.startswith("https://127.0.0.1:")
        with Client(url, ca_bundle=ca) as client:
            result = client.predict("iris", np.asarray(ROW["inputs"]))
            assert result[0]["label"] in ("setosa", "versicolor", "virginica")
        reply = httpx.post(url + "/v1/models/iris/predict", json=ROW,
                           verify=ssl.create_default_context(cafile=ca))
        assert reply.status_code == 200 and reply.headers["lepton-model-version"] == "1"
        with pytest.raises(ServerUnavailableError, match="CERTIFICATE_VERIFY_FAILED|certif"), \
                Client(url) as unchecked:  # the system CAs do not know ours
            unchecked.predict("iris", np.asarray(ROW["inputs"]))
        with pytest.raises(httpx.TransportError):  # plain HTTP gets no answer
            httpx.get(url.replace("https", "http") + "/v2/health/live")
    finally:
        server.stop()


def test_a_public_bind_without_tls_warns_that_the_token_travels_in_clear(
        registry_store, monkeypatch, capsys):  # noqa: F811
    from lepton.cli import main
    from lepton.serve import server

    monkeypatch.setattr(server, "serve", lambda config: 0)  # everything up to listening
    token = "t" * 40
    assert main(["serve", "iris@production", "--host", "0.0.0.0", "--token", token]) == 0
    assert "token travel in clear" in capsys.readouterr().err
    assert main(["serve", "iris@production", "--tls-cert", "missing.pem",
                 "--tls-key", "missing.key"]) == 2
    assert "No such file for --tls-cert" in capsys.readouterr().err
    # --split at start: checked against the served arms, then stored for the server to poll
    from lepton.store import _traffic
    from tests.serve.test_traffic import clear

    clear(registry_store)
    assert main(["serve", "iris@production", "iris@candidate", "--split",
                 "production=90,nope=10"]) == 2
    assert "Unknown version or alias for iris" in capsys.readouterr().err
    assert main(["serve", "iris@production", "iris@candidate", "--split",
                 "production=90,candidate=10"]) == 0
    assert _traffic.current(registry_store, "iris")["spec"]["arms"] == {
        "production": 90.0, "candidate": 10.0}
    clear(registry_store)
    # --canary at start: the first step's weight, the first served arm as the champion
    assert main(["serve", "iris@production", "iris@candidate", "--canary", "candidate"]) == 0
    spec = _traffic.current(registry_store, "iris")["spec"]
    assert spec["arms"] == {"production": 95.0, "candidate": 5.0}
    assert spec["canary"]["arm"] == "candidate" and spec["champion"] == "production"
    clear(registry_store)
    assert main(["serve", "iris@production", "--canary", "production"]) == 2
    assert "The canary and the champion are the same arm" in capsys.readouterr().err
