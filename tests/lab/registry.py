"""The lab's image registry on repo1 (playbooks/registry.yml), for the integration tests and the container benchmark:
a CA made for one run and the certificate it signed, the registry's settings, and the settings that move the lab's
fleet to container releases from it. Nothing here is for use outside the lab."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def lab_ca(directory, names, addresses):
    """A CA and a server certificate it signed for names and addresses: PEM files in directory, their paths
    {ca, cert, key}."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seedops lab CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    os.makedirs(directory, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = {"ca": os.path.join(directory, "ca.crt"), "cert": os.path.join(directory, "tls.crt"),
             "key": os.path.join(directory, "tls.key")}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def registry_vars(directory, address, users):
    """A CA and a certificate for repo1 (its name, its lab address and 127.0.0.1), and the extra-variables file of
    playbooks/registry.yml with that certificate, its key and `users`: {ca, vars} (paths in directory)."""
    paths = lab_ca(os.path.join(directory, "pki"), ["repo1"], [address, "127.0.0.1"])
    with open(paths["cert"], encoding="utf-8") as cert, open(paths["key"], encoding="utf-8") as key:
        settings = {"registry_tls_cert": cert.read(), "registry_tls_key": key.read(), "registry_users": users}
    extra = os.path.join(directory, "registry.json")
    with open(extra, "w", encoding="utf-8") as f:
        json.dump(settings, f)
    return {"ca": paths["ca"], "vars": extra}


def container_vars(path, address, ca, user):
    """The extra-variables file (written to path) that runs the lab's service as containers from the registry at
    address:5000 (tests/integration/playbooks/container.yml, deploy.yml): the engine trusts the CA file ca; the hosts
    pull as user ({name, password}). Returns the settings."""
    with open(ca, encoding="utf-8") as f:
        pem = f.read()
    settings = {"seedops_demo_kind": "container", "docker_registry_ca_certs": {f"{address}:5000": pem},
                "deploy_image_registry": f"https://{address}:5000", "deploy_image_username": user["name"],
                "deploy_image_password": user["password"]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(settings, f)
    return settings
