"""Email destination against a real local SMTP server (aiosmtpd on 127.0.0.1)."""

from workloads.alerts import EmailConfig, EmailDestination, send_alert


def test_email_is_received_with_subject_body_and_headers(smtp_server, alert):
    config = EmailConfig(to=["ml-team@example.com", "oncall@example.com"], host="127.0.0.1",
                         port=smtp_server.port, sender="mlops@example.com", timeout=5)
    [result] = send_alert(alert, [EmailDestination(config)])

    assert result.ok, result.detail
    assert result.destination == "email"
    assert result.detail == "sent to 2 recipient(s)"
    [received] = smtp_server.messages
    assert received["mail_from"] == "mlops@example.com"
    assert received["rcpt_tos"] == ["ml-team@example.com", "oncall@example.com"]
    msg = received["message"]
    assert msg["Subject"] == (
        "[mlops dev] threshold breach: bakehouse_autolog - rmse 3.41 above max 2.5 on window 2026-11-26 13:00"
    )
    assert msg["X-Mlops-Kind"] == "breach"
    assert msg["X-Mlops-Model"] == "bakehouse_autolog"
    assert msg["X-Mlops-Alert-Id"] == alert.id
    body = msg.get_content()
    assert "rmse 3.41 above max 2.5" in body
    assert "  rmse: 3.41" in body
    assert "  direction: max" in body
    assert smtp_server.logins == []


def test_email_logs_in_with_credentials(smtp_server, alert):
    config = EmailConfig(to=["a@example.com"], host="127.0.0.1", port=smtp_server.port,
                         username="mlops", password="s3cret", timeout=5)
    [result] = send_alert(alert, [EmailDestination(config)])
    assert result.ok, result.detail
    assert smtp_server.logins and smtp_server.logins[0][1:] == ("mlops", "s3cret")
    assert len(smtp_server.messages) == 1


def test_email_bad_credentials_reported_not_raised(smtp_server, alert):
    config = EmailConfig(to=["a@example.com"], host="127.0.0.1", port=smtp_server.port,
                         username="mlops", password="wrong", timeout=5)
    [result] = send_alert(alert, [EmailDestination(config)])
    assert not result.ok
    assert "SMTPAuthenticationError" in result.detail
    assert smtp_server.messages == []


def test_email_to_closed_port_reported(closed_port, alert):
    config = EmailConfig(to=["a@example.com"], host="127.0.0.1", port=closed_port, timeout=2)
    [result] = send_alert(alert, [EmailDestination(config)])
    assert not result.ok
    assert "ConnectionRefusedError" in result.detail
    assert result.target == f"smtp://127.0.0.1:{closed_port} -> a@example.com"


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_email_starttls_then_login(tmp_path, monkeypatch, smtp_factory, alert):
    import ssl

    cert_path, key_path = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    server = smtp_factory(tls_context=server_tls, require_starttls=True, auth_require_tls=True)
    # The client verifies the server certificate: trust the test's self-signed one.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    config = EmailConfig(to=["a@example.com"], host="127.0.0.1", port=server.port, starttls=True,
                         username="mlops", password="s3cret", timeout=5)
    [ok] = send_alert(alert, [EmailDestination(config)])
    plain = EmailConfig(to=["a@example.com"], host="127.0.0.1", port=server.port, timeout=5)
    [refused] = send_alert(alert, [EmailDestination(plain)])

    assert ok.ok, ok.detail
    assert server.logins[0][1:] == ("mlops", "s3cret")
    assert len(server.messages) == 1
    assert not refused.ok
    assert "530" in refused.detail
