# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes on paper: a Deployment and a Service from the settings a fleet deploy uses (docs/kubernetes.md)."""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter.deploy import batch_sizes, serial_problems

_DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
# A Kubernetes object's name and label value (RFC 1123 label: the strictest of the names used here).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
MANAGED_BY = "seedops.deploy"


def _fail(message):
    raise AnsibleFilterError(f"k8s_manifests: {message}")


def _number(settings, key, default, minimum=0):
    value = settings.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        _fail(f"{key} must be a number, got {value!r}")
    if number < minimum:
        _fail(f"{key} must be at least {minimum}, got {value!r}")
    return number


def _probe(health, port_default):
    """deploy_health (url, successes, interval) -> an httpGet readiness probe on the container's port."""
    url = urlsplit(str(health.get("url", "")))
    if url.scheme not in ("http", "https") or not url.hostname:
        _fail(f"health.url must be an http or https URL such as http://127.0.0.1:8080/healthz, got {health.get('url')!r}")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    successes = int(_number(health, "successes", 1, 1))
    interval = _number(health, "interval", 1, 0)
    return {
        "httpGet": {"path": path, "port": url.port or port_default or (443 if url.scheme == "https" else 80),
                    "scheme": url.scheme.upper()},
        # The kubelet probes in whole seconds; the deploy's health gate may probe faster.
        "periodSeconds": max(1, math.ceil(interval)),
        "successThreshold": successes,
        "failureThreshold": 3,
        "timeoutSeconds": 2,
    }


def _strategy(settings, replicas):
    """The deploy's batches and switch -> a RollingUpdate: the restart path takes a batch out, then starts it again
    (maxUnavailable: the largest batch the plan would cut for `replicas` hosts, maxSurge 0); start beside, then flip
    starts the new instances first (maxSurge: that batch, maxUnavailable 0); together starts every new one first."""
    switch = settings.get("switch", "rolling")
    if switch not in ("rolling", "together"):
        _fail(f"switch must be rolling or together, got {switch!r}")
    if switch == "together":
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}
    serial = settings.get("serial", [1, "34%", "100%"])
    # The same rule as the deploy's own check of deploy_serial (the plan refuses what this refuses).
    for problem in serial_problems(serial, name="serial"):
        _fail(problem)
    largest = max(batch_sizes(serial, replicas) or [1])
    if settings.get("beside"):
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": largest, "maxUnavailable": 0}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": largest}}


def _env(settings, name, port_env, port):
    env = []
    plain = settings.get("env") or {}
    secret_keys = list(settings.get("secret_env_keys") or [])
    if not isinstance(plain, dict):
        _fail(f"env must be a dict of names and values, got {type(plain).__name__}")
    for key in list(plain) + secret_keys + ([port_env] if port_env else []):
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            _fail(f"{key!r} is not a valid environment variable name for Kubernetes")
    for key, value in plain.items():
        env.append({"name": key, "value": "" if value is None else str(value)})
    # Secret values never go into a manifest: the container reads them from a Secret the cluster holds.
    for key in secret_keys:
        env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": f"{name}-secret", "key": key}}})
    if port_env and port_env not in plain:
        env.append({"name": port_env, "value": str(port)})
    return env


def k8s_manifests(settings):
    """A Deployment and a Service (a list of two dicts) from a fleet deploy's settings; see k8s_manifests.yml."""
    if not isinstance(settings, dict):
        _fail(f"expects a dict of settings, got {type(settings).__name__}")
    name = settings.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        _fail(f"name must be a lowercase DNS label (letters, digits, '-'; at most 63), got {name!r}")
    image = settings.get("image")
    if not isinstance(image, str) or not _DIGEST_REF.match(image):
        _fail(f"image must be pinned by digest (registry/name@sha256:<64 hex digits>), got {image!r}: a tag can move "
              "between two pods' pulls, and then the fleet runs two builds. Resolve the tag once (skopeo inspect, "
              "or the registry's API) and give the digest")
    replicas = int(_number(settings, "replicas", 0, 1))
    port = int(_number(settings, "port", 8080, 1))
    service_port = int(_number(settings, "service_port", 80, 1))
    health = settings.get("health") or {}
    if not isinstance(health, dict):
        _fail("health must be a dict like deploy_health (url, successes, interval, timeout)")
    probe = _probe(health, port)
    drain = int(math.ceil(_number(settings, "drain_timeout", 60)))
    stop = int(math.ceil(_number(settings, "stop_timeout", 30)))
    pre_stop = int(math.ceil(_number(settings, "pre_stop_seconds", 5)))
    version = str(settings.get("version") or "")
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": MANAGED_BY}
    pod_labels = dict(labels, **({"app.kubernetes.io/version": version} if re.match(
        r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", version) else {}))
    metadata = {"name": name, "labels": labels}
    if settings.get("namespace"):
        metadata["namespace"] = settings["namespace"]
    container = {
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(settings, name, settings.get("port_env"), port),
        "readinessProbe": probe,
        # Out of the Service's endpoints first, then the stop signal: the drain's part. The service's own graceful
        # stop (stop_timeout) finishes the requests in flight.
        "lifecycle": {"preStop": {"sleep": {"seconds": pre_stop}}},
    }
    args = settings.get("args") or []
    if args:
        container["args"] = [str(a) for a in args]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": _strategy(settings, replicas),
            # The health gate's deadline: a rollout whose new pods are not ready in time is marked failed.
            "progressDeadlineSeconds": int(math.ceil(_number(health, "timeout", 60, 1))),
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    # preStop, then as long as the deploy lets a drain and a graceful stop take.
                    "terminationGracePeriodSeconds": pre_stop + drain + stop,
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": dict(metadata),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": service_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [deployment, service]


class FilterModule:
    """Kubernetes manifests from fleet deploy settings."""

    def filters(self):
        return {"k8s_manifests": k8s_manifests}
