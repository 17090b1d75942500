"""Unit tests for k8s_manifests: Kubernetes on paper. Every manifest is validated offline against the Kubernetes API's
own schemas (kubernetes-validate, strict: unknown fields fail) for the oldest and the newest release the docs name."""

import os
import re

import kubernetes_validate
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter import k8s as plugin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
IMAGE = "repo1:5000/seedops-app@sha256:" + "c" * 64
# The lab's settings (tests/lab/group_vars and the roles' defaults).
LAB = {"name": "seedops-app", "image": IMAGE, "replicas": 3, "version": "2.0.0", "port": 8080,
       "health": {"url": "http://127.0.0.1:8080/healthz", "successes": 3, "interval": 0.5, "timeout": 60},
       "drain_timeout": 60, "stop_timeout": 30, "env": {"LOG_LEVEL": "info", "WORKERS": 4},
       "secret_env_keys": ["DB_PASSWORD"], "args": ["--listen", ":8080"]}
# preStop's sleep action is on by default from 1.30 (beta), and GA in 1.34.
RELEASES = ["1.30.0", "1.37.0"]


def manifests(**changes):
    return plugin.k8s_manifests({**LAB, **changes})


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("changes", [{}, {"beside": True}, {"switch": "together"}, {"namespace": "shop"},
                                     {"env": {}, "secret_env_keys": [], "args": [], "version": "a b"}])
def test_the_manifests_are_valid_kubernetes_objects(release, changes):
    deployment, service = manifests(**changes)
    for doc in (deployment, service):
        kubernetes_validate.validate(doc, release, strict=True)
    # As kubectl and kubernetes.core.k8s read them: YAML documents.
    assert [d["kind"] for d in yaml.safe_load_all(yaml.safe_dump_all([deployment, service]))] == ["Deployment", "Service"]


def test_the_validation_can_fail():
    deployment, _service = manifests()
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, RELEASES[-1], strict=True)
    deployment, _service = manifests()
    deployment["spec"]["replicas"] = "3"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, RELEASES[-1], strict=True)


@pytest.mark.parametrize("replicas, changes, rolling", [
    # The restart path: a batch out, then back; never more out than the plan's largest batch (1, 3, 6 of 10).
    (3, {}, {"maxSurge": 0, "maxUnavailable": 1}),
    (10, {}, {"maxSurge": 0, "maxUnavailable": 6}),
    (10, {"serial": "2"}, {"maxSurge": 0, "maxUnavailable": 2}),
    # Start beside, then flip: the new instances first, nobody out.
    (10, {"beside": True}, {"maxSurge": 6, "maxUnavailable": 0}),
    # Together: every new instance up before any old one goes.
    (10, {"switch": "together"}, {"maxSurge": "100%", "maxUnavailable": 0}),
])
def test_the_batches_become_the_rolling_update(replicas, changes, rolling):
    deployment, _service = manifests(replicas=replicas, **changes)
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": rolling}
    assert deployment["spec"]["replicas"] == replicas


def test_the_health_gate_drain_and_stop_become_the_probe_the_deadline_and_the_grace_period():
    deployment, service = manifests(health={"url": "http://127.0.0.1:9000/ready?deep=1", "successes": 2,
                                            "interval": 1.5, "timeout": 90}, pre_stop_seconds=7)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready?deep=1", "port": 9000, "scheme": "HTTP"}
    assert (container["readinessProbe"]["successThreshold"], container["readinessProbe"]["periodSeconds"]) == (2, 2)
    assert deployment["spec"]["progressDeadlineSeconds"] == 90
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 7}}}
    assert pod["terminationGracePeriodSeconds"] == 7 + 60 + 30
    assert container["image"] == IMAGE
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "seedops-app"}
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_secrets_are_read_from_a_secret_and_never_written():
    deployment, _service = manifests(port_env="PORT")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "LOG_LEVEL", "value": "info"}, {"name": "WORKERS", "value": "4"},
                   {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "seedops-app-secret",
                                                                          "key": "DB_PASSWORD"}}},
                   {"name": "PORT", "value": "8080"}]


@pytest.mark.parametrize("changes, message", [
    ({"image": "repo1:5000/seedops-app:2.0.0"}, "image must be pinned by digest"),
    ({"image": "repo1:5000/seedops-app@sha256:abc"}, "image must be pinned by digest"),
    ({"name": "Seedops_App"}, "name must be a lowercase DNS label"),
    ({"replicas": 0}, "replicas must be at least 1"),
    ({"health": {"url": "127.0.0.1:8080/healthz"}}, "health.url must be an http or https URL"),
    ({"switch": "sideways"}, "switch must be rolling or together"),
    ({"env": {"BAD NAME": "1"}}, "'BAD NAME' is not a valid environment variable name"),
    ({"serial": ["half"]}, 'serial ["half"] holds "half", which is neither a number of hosts nor a percentage'),
    # Python's int() would read "1_000" as 1000; the deploy's check of deploy_serial takes plain digits only, so does this.
    ({"serial": [1, "1_000"]}, 'serial [1, "1_000"] holds "1_000", which is neither a number of hosts nor a percentage'),
])
def test_bad_settings_are_refused_naming_what_is_wrong(changes, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        manifests(**changes)


def test_the_role_reads_settings_the_deploy_and_app_service_roles_default():
    """k8s_render falls back to the two roles' defaults files: the settings it reads must be there."""
    with open(os.path.join(ROOT, "roles", "k8s_render", "tasks", "main.yml"), encoding="utf-8") as handle:
        wanted = set(re.findall(r"k8s_render_get\.(\w+)", handle.read()))
    defaults = {}
    for role in ("deploy", "app_service"):
        with open(os.path.join(ROOT, "roles", role, "defaults", "main.yml"), encoding="utf-8") as handle:
            defaults.update(yaml.safe_load(handle))
    assert wanted and wanted <= set(defaults), wanted - set(defaults)
