"""Pieces of the small HTTP(S) servers the unit tests run on 127.0.0.1: a payload served whole or from a
Range offset (optionally cut short), and a self-signed certificate for 127.0.0.1."""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def range_start(handler):
    """Where the request's `Range: bytes=N-` starts; 0 without one."""
    rng = handler.headers.get("Range")
    return int(rng.split("=")[1].rstrip("-")) if rng else 0


def send_head(handler, payload, start, partial):
    """Status 206 (with Content-Range) when `partial`, else 200, and Content-Length for payload[start:].
    Returns the body, for the caller to write (whole, cut or slowly)."""
    body = payload[start:]
    handler.send_response(206 if partial else 200)
    if partial:
        handler.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(payload) - 1, len(payload)))
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    return body


def send_payload(handler, payload, start, partial, cut=None):
    """send_head, then the body - or only its first `cut` bytes and a closed connection."""
    body = send_head(handler, payload, start, partial)
    if cut is None:
        handler.wfile.write(body)
        return
    handler.wfile.write(body[:cut])
    handler.wfile.flush()
    handler.connection.shutdown(2)


def self_signed(directory):
    """A self-signed certificate for 127.0.0.1 written into `directory`: (certfile, keyfile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)
