"""The image registry on repo1 (roles/registry: Debian's docker-registry, TLS from a lab CA, basic auth) and the
multi-platform image of the sample service pushed to it (seedops.deploy.image) and read back (image_info): from the
controller through repo1's published port, and from an app host over the lab network, as a deploy's plan would."""

import datetime
import ipaddress
import json
import os
import subprocess

import pytest
import requests

from conftest import REPO_ROOT, run_module, run_playbook, sh

USERS = [{"name": "ci", "password": "lab-ci-secret"}]
STORE = "/var/lib/docker-registry/docker/registry/v2/blobs/sha256"


def lab_ca(directory, names, addresses):
    """A CA and a server certificate it signed for names and addresses (PEM files in directory); the CA's path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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


@pytest.fixture(scope="module")
def registry(lab, tmp_path_factory):
    """The registry on repo1, set up by playbooks/registry.yml with a fresh lab CA; its URLs and the CA file."""
    repo = lab.host("repo1")
    pki = lab_ca(str(tmp_path_factory.mktemp("pki")), ["repo1"], [repo["address"], "127.0.0.1"])
    with open(pki["cert"], encoding="utf-8") as cert, open(pki["key"], encoding="utf-8") as key:
        settings = {"registry_tls_cert": cert.read(), "registry_tls_key": key.read(), "registry_users": USERS}
    extra = str(tmp_path_factory.mktemp("vars") / "registry.json")
    with open(extra, "w", encoding="utf-8") as f:
        json.dump(settings, f)
    result, recap = run_playbook("playbooks/registry.yml", lab.inventory, "-e", f"@{extra}")
    assert result.returncode == 0 and recap["repo1"]["failed"] == 0, result.stdout[-3000:]
    rerun, recap = run_playbook("playbooks/registry.yml", lab.inventory, "-e", f"@{extra}")
    assert rerun.returncode == 0 and recap["repo1"]["changed"] == 0, "a rerun changes nothing: " + rerun.stdout[-3000:]
    return {"outside": f"https://127.0.0.1:{repo['ports']['5000/tcp']}", "inside": f"https://{repo['address']}:5000",
            "ca": pki["ca"]}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """The sample service 2.0.0 built for linux/amd64 and linux/arm64, as the build role packages it."""
    out = tmp_path_factory.mktemp("image-dist")
    build = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh")
    subprocess.run([build, "-o", str(out), "-p", "linux/amd64 linux/arm64", "2.0.0"], check=True, capture_output=True)
    return [{"platform": p, "path": str(out / f"seedops-app-2.0.0-{p.replace('/', '-')}.tar.gz")}
            for p in ("linux/amd64", "linux/arm64")]


def push(lab, registry, packages, password=USERS[0]["password"], tag="2.0.0"):
    return run_module(lab, "localhost", "seedops.deploy.image", {
        "registry": registry["outside"], "repository": "seedops-app", "tag": tag, "username": "ci",
        "password": password, "ca_path": registry["ca"], "packages": packages,
        "entrypoint": ["/app/bin/seedops-app"], "ports": [8080]}, become=False)


def test_a_two_platform_index_is_pushed_once_and_read_back_by_digest_from_an_app_host(lab, registry, packages):
    pushed = push(lab, registry, packages)
    assert pushed["_status"] == "CHANGED", pushed
    digest = pushed["digest"]
    # The registry itself, asked without our client: an OCI index of two platforms, stored under its own digest.
    auth = ("ci", USERS[0]["password"])
    answer = requests.get(f"{registry['outside']}/v2/seedops-app/manifests/2.0.0", auth=auth, verify=registry["ca"],
                          headers={"Accept": "application/vnd.oci.image.index.v1+json"}, timeout=30)
    assert answer.status_code == 200 and answer.headers["Docker-Content-Digest"] == digest
    index = answer.json()
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted((m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]) == [
        ("linux", "amd64"), ("linux", "arm64")]
    arm = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    manifest = requests.get(f"{registry['outside']}/v2/seedops-app/manifests/{arm['digest']}", auth=auth,
                            verify=registry["ca"], headers={"Accept": arm["mediaType"]}, timeout=30).json()
    config = requests.get(f"{registry['outside']}/v2/seedops-app/blobs/{manifest['config']['digest']}", auth=auth,
                          verify=registry["ca"], timeout=30).json()
    assert config["architecture"] == "arm64" and config["config"]["Entrypoint"] == ["/app/bin/seedops-app"]

    again = push(lab, registry, packages)
    assert again["_status"] == "SUCCESS" and again["digest"] == digest and again["uploaded"] == 0, again

    # app1 reaches the registry over the lab network, trusting the lab CA, and resolves the tag to the same digest.
    sh(lab, "app1", "sudo install -d /etc/seedops-lab")
    run_module(lab, "app1", "ansible.builtin.copy", {"src": registry["ca"], "dest": "/etc/seedops-lab/ca.crt"})
    found = run_module(lab, "app1", "seedops.deploy.image_info", {
        "registry": registry["inside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
        "password": USERS[0]["password"], "ca_path": "/etc/seedops-lab/ca.crt",
        "platforms": ["linux/amd64", "linux/arm64"]}, become=False)
    assert found["_status"] == "SUCCESS" and found["digest"] == digest, found
    assert found["reference"] == f"{lab.host('repo1')['address']}:5000/seedops-app@{digest}"
    assert found["platforms"]["linux/arm64"]["digest"] == arm["digest"]


def test_wrong_credentials_an_untrusted_certificate_and_a_missing_platform_are_clear_errors(lab, registry, packages):
    refused = push(lab, registry, packages, password="not-the-password", tag="2.0.0-refused")
    assert refused["_status"] == "FAILED!", refused
    assert "refused user 'ci' (HTTP 401) for the API check (/v2/): check the registry username and password" in refused["msg"]
    untrusted = run_module(lab, "localhost", "seedops.deploy.image_info", {
        "registry": registry["outside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
        "password": USERS[0]["password"]}, become=False)
    assert untrusted["_status"] == "FAILED!" and "give ca_path, the CA that signed it" in untrusted["msg"], untrusted
    missing = run_module(lab, "localhost", "seedops.deploy.image_info", {
        "registry": registry["outside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
        "password": USERS[0]["password"], "ca_path": registry["ca"], "platforms": ["linux/s390x"]}, become=False)
    assert missing["_status"] == "FAILED!", missing
    assert "has no image for linux/s390x; it has linux/amd64, linux/arm64" in missing["msg"]


def test_a_manifest_changed_in_the_registry_store_is_refused(lab, registry, packages):
    pushed = push(lab, registry, packages)
    assert pushed["_status"] in ("SUCCESS", "CHANGED"), pushed
    arm = next(m for m in pushed["manifests"] if m["platform"] == "linux/arm64")["digest"].split(":")[1]
    data = f"{STORE}/{arm[:2]}/{arm}/data"
    sh(lab, "repo1", f"sudo cp {data} /tmp/manifest.orig && sudo sed -i 's/\"schemaVersion\":2/\"schemaVersion\": 2/' {data}")
    try:
        found = run_module(lab, "localhost", "seedops.deploy.image_info", {
            "registry": registry["outside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
            "password": USERS[0]["password"], "ca_path": registry["ca"]}, become=False)
    finally:
        sh(lab, "repo1", f"sudo cp /tmp/manifest.orig {data}")
    assert found["_status"] == "FAILED!", found
    assert f"answered manifest sha256:{arm} with a body whose digest is sha256:" in found["msg"]
    assert "refused (the manifest was changed or corrupted)" in found["msg"]
