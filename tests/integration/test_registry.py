"""The image registry on repo1 (roles/registry: Debian's docker-registry, TLS from a lab CA, basic auth) and the
multi-platform image of the sample service pushed to it (seedops.deploy.image) and read back (image_info): from the
controller through repo1's published port, and from an app host over the lab network, as a deploy's plan would."""

import requests

from conftest import REGISTRY_USERS, push_image, run_module, run_playbook, sh

STORE = "/var/lib/docker-registry/docker/registry/v2/blobs/sha256"
PASSWORD = REGISTRY_USERS[0]["password"]


def test_the_registry_role_reruns_without_a_change(lab, registry):
    rerun, recap = run_playbook("playbooks/registry.yml", lab.inventory, "-e", f"@{registry['vars']}")
    assert rerun.returncode == 0 and recap["repo1"]["changed"] == 0, rerun.stdout[-3000:]


def test_a_two_platform_index_is_pushed_once_and_read_back_by_digest_from_an_app_host(lab, registry, image_packages):
    # CHANGED, unless another test file pushed the same build to this lab before (the digest is the same then).
    pushed = push_image(lab, registry, image_packages)
    assert pushed["_status"] in ("CHANGED", "SUCCESS") and pushed["manifests"], pushed
    digest = pushed["digest"]
    # The registry itself, asked without our client: an OCI index of two platforms, stored under its own digest.
    auth = ("ci", PASSWORD)
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

    again = push_image(lab, registry, image_packages)
    assert again["_status"] == "SUCCESS" and again["digest"] == digest and again["uploaded"] == 0, again

    # app1 reaches the registry over the lab network, trusting the lab CA, and resolves the tag to the same digest.
    sh(lab, "app1", "sudo install -d /etc/seedops-lab")
    run_module(lab, "app1", "ansible.builtin.copy", {"src": registry["ca"], "dest": "/etc/seedops-lab/ca.crt"})
    found = run_module(lab, "app1", "seedops.deploy.image_info", {
        "registry": registry["inside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
        "password": PASSWORD, "ca_path": "/etc/seedops-lab/ca.crt",
        "platforms": ["linux/amd64", "linux/arm64"]}, become=False)
    assert found["_status"] == "SUCCESS" and found["digest"] == digest, found
    assert found["reference"] == f"{lab.host('repo1')['address']}:5000/seedops-app@{digest}"
    assert found["platforms"]["linux/arm64"]["digest"] == arm["digest"]


def test_wrong_credentials_an_untrusted_certificate_and_a_missing_platform_are_clear_errors(lab, registry, image_packages):
    refused = push_image(lab, registry, image_packages, password="not-the-password", tag="2.0.0-refused")
    assert refused["_status"] == "FAILED!", refused
    assert "refused user 'ci' (HTTP 401) for the API check (/v2/): check the registry username and password" in refused["msg"]
    untrusted = run_module(lab, "localhost", "seedops.deploy.image_info", {
        "registry": registry["outside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
        "password": PASSWORD}, become=False)
    assert untrusted["_status"] == "FAILED!" and "give ca_path, the CA that signed it" in untrusted["msg"], untrusted
    missing = run_module(lab, "localhost", "seedops.deploy.image_info", {
        "registry": registry["outside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
        "password": PASSWORD, "ca_path": registry["ca"], "platforms": ["linux/s390x"]}, become=False)
    assert missing["_status"] == "FAILED!", missing
    assert "has no image for linux/s390x; it has linux/amd64, linux/arm64" in missing["msg"]


def test_a_manifest_changed_in_the_registry_store_is_refused(lab, registry, image_packages):
    pushed = push_image(lab, registry, image_packages)
    assert pushed["_status"] in ("SUCCESS", "CHANGED"), pushed
    arm = next(m for m in pushed["manifests"] if m["platform"] == "linux/arm64")["digest"].split(":")[1]
    data = f"{STORE}/{arm[:2]}/{arm}/data"
    sh(lab, "repo1", f"sudo cp {data} /tmp/manifest.orig && sudo sed -i 's/\"schemaVersion\":2/\"schemaVersion\": 2/' {data}")
    try:
        found = run_module(lab, "localhost", "seedops.deploy.image_info", {
            "registry": registry["outside"], "repository": "seedops-app", "reference": "2.0.0", "username": "ci",
            "password": PASSWORD, "ca_path": registry["ca"]}, become=False)
    finally:
        sh(lab, "repo1", f"sudo cp /tmp/manifest.orig {data}")
    assert found["_status"] == "FAILED!", found
    assert f"answered manifest sha256:{arm} with a body whose digest is sha256:" in found["msg"]
    assert "refused (the manifest was changed or corrupted)" in found["msg"]
