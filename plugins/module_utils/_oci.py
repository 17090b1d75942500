# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI images without a container engine (private to seedops.deploy): a layer made from a release package, the image
config, the per-platform manifests and the image index that names them, all byte-for-byte reproducible; and a client
of a registry's HTTP API (distribution v2) that pushes and reads them, checking every digest it is given or sends.

The registry is reached through a `request(method, url, data=None, headers=None) -> (status, headers, body)`
callable, so tests can put a registry of their own behind it; `urls_request` builds one on
ansible.module_utils.urls.open_url (TLS with a CA file, basic auth)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import re
import tarfile

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils._package import HashingSink

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# What a registry may answer for a tag or digest: an index (or Docker's manifest list) or one image's manifest.
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join([INDEX, MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

EPOCH = "1970-01-01T00:00:00Z"
CHUNK = 1024 * 1024
# A repository name (distribution's grammar, lower case path components) and a tag.
REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ARCHITECTURES = {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}


class ImageError(Exception):
    """An image that cannot be built, pushed or trusted; the message says what and what to do."""


def canonical(doc):
    """The bytes of a JSON document as this module writes it (sorted keys, no spaces): the same doc, the same digest."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_platform(text):
    """'linux/arm64' (or 'linux/arm/v7') -> the OCI platform object."""
    parts = str(text).split("/")
    if len(parts) not in (2, 3) or parts[0] != "linux" or parts[1] not in ARCHITECTURES or not all(parts):
        raise ImageError("platform %r is not os/architecture[/variant] with os linux and an architecture among %s"
                         % (text, ", ".join(sorted(ARCHITECTURES))))
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def platform_name(platform):
    return "/".join([platform.get("os", "?"), platform.get("architecture", "?")] + (
        [platform["variant"]] if platform.get("variant") else []))


def lacking(what, missing, platforms):
    """The message for an index (`what`) that has no image for the `missing` platforms, naming the ones it has."""
    return "%s has no image for %s; it has %s. Build and push those platforms first" % (
        what, ", ".join(missing), ", ".join(sorted(platforms)) or "none")


def check_repository(repository, tag=None):
    if not REPOSITORY.match(repository or ""):
        raise ImageError("repository %r is not a registry repository name: lower-case letters, digits and . _ - "
                         "separators, path parts joined by /" % (repository,))
    if tag is not None and not TAG.match(tag):
        raise ImageError("tag %r is not a tag: up to 128 letters, digits, _ . -, not starting with . or -" % (tag,))


def unkept_images(images, name, keep, in_use):
    """The ids of the engine's images (each a mapping with Id, RepoTags, RepoDigests, as the engine lists them) that a
    prune of repository name (<host[:port]>/<repository>) removes: pulled by digest from that repository only (no tag,
    every repo digest of it), none of their repo digests in keep, and no container in in_use (image ids) made from
    them. An image with a tag was pulled or tagged by someone else and is never removed."""
    keep = set(keep)
    doomed = []
    for image in images:
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        digests = image.get("RepoDigests") or []
        if tags or not digests or image["Id"] in in_use:
            continue
        if all(d.split("@", 1)[0] == name for d in digests) and not keep.intersection(digests):
            doomed.append(image["Id"])
    return sorted(doomed)


def descriptor(media_type, digest, size, platform=None):
    desc = {"mediaType": media_type, "digest": digest, "size": size}
    if platform:
        desc["platform"] = platform
    return desc


def _member_name(prefix, name):
    """The member's path in the image: under prefix, normalised; refuses names that leave it."""
    clean = posixpath.normpath(name)
    if name.startswith("/") or clean == ".." or clean.startswith("../"):
        raise ImageError("package member %r leaves the package (absolute or ..); nothing was built" % name)
    return posixpath.join(prefix, clean) if clean != "." else prefix


def package_layer(package, dest, prefix="app", mtime=0):
    """Write the gzip'd tar layer of a release package (tar, tar.gz) to the file dest: every member under prefix/,
    owned by 0:0, stamped mtime, in the package's order. Only regular files, directories and symlinks that stay
    inside the package are taken. Returns {"digest", "diff_id", "size"}: the digest of the gzip'd bytes (what the
    manifest names) and of the tar (what the config lists)."""
    prefix = prefix.strip("/")
    if not prefix or ".." in prefix.split("/"):
        raise ImageError("prefix %r must name a directory in the image, such as app" % prefix)
    try:
        source = tarfile.open(package, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ImageError("cannot read the package %s as a tar archive: %s" % (package, to_native(exc)))
    with source, open(dest, "wb") as raw:
        packed = HashingSink(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
            plain = HashingSink(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as layer:
                written = set()
                parts = prefix.split("/")
                for depth in range(1, len(parts) + 1):
                    _add_dir(layer, "/".join(parts[:depth]), mtime, written)
                for member in source:
                    _add_member(layer, source, member, prefix, mtime, written)
            plain.flush()
    return {"digest": packed.sha256(), "diff_id": plain.sha256(), "size": packed.size}


def _add_dir(layer, name, mtime, written, mode=0o755):
    if name in written:
        return
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
    layer.addfile(info)
    written.add(name)


def _add_member(layer, source, member, prefix, mtime, written):
    name = _member_name(prefix, member.name)
    if member.isdir():
        _add_dir(layer, name, mtime, written, member.mode & 0o7777)
        return
    parent = posixpath.dirname(name)
    if parent not in written:
        # A package that lists files before (or without) their directories.
        _add_dir(layer, parent, mtime, written)
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = member.mode & 0o777, mtime
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or not (target == prefix or target.startswith(prefix + "/")):
            raise ImageError("package member %r links to %r, outside the package; nothing was built"
                             % (member.name, member.linkname))
        info.type, info.linkname = tarfile.SYMTYPE, member.linkname
        layer.addfile(info)
    elif member.isfile():
        info.size = member.size
        layer.addfile(info, source.extractfile(member))
    else:
        raise ImageError("package member %r is neither a file, a directory nor a symlink; nothing was built"
                         % member.name)
    written.add(name)


def image_config(platform, diff_ids, entrypoint, env=None, ports=(), labels=None, workdir=None, user=None):
    """The image config (bytes) of one platform's image."""
    config = {"Entrypoint": list(entrypoint)}
    if env:
        config["Env"] = ["%s=%s" % (key, env[key]) for key in sorted(env)]
    if ports:
        config["ExposedPorts"] = {"%d/tcp" % int(port): {} for port in ports}
    if labels:
        config["Labels"] = dict(labels)
    if workdir:
        config["WorkingDir"] = workdir
    if user:
        config["User"] = str(user)
    doc = dict(platform)
    doc.update(created=EPOCH, config=config, rootfs={"type": "layers", "diff_ids": list(diff_ids)},
               history=[{"created": EPOCH, "created_by": "seedops.deploy.image"}])
    return canonical(doc)


def image_manifest(config_bytes, layers, annotations=None):
    """The manifest (bytes) of one image: its config and its layers' descriptors."""
    doc = {"schemaVersion": 2, "mediaType": MANIFEST,
           "config": descriptor(CONFIG, sha256(config_bytes), len(config_bytes)),
           "layers": [descriptor(LAYER, layer["digest"], layer["size"]) for layer in layers]}
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical(doc)


def image_index(manifests, annotations=None):
    """The image index (bytes): [(platform, manifest bytes)], one entry per platform, in platform order."""
    entries = sorted(manifests, key=lambda item: platform_name(item[0]))
    names = [platform_name(platform) for platform, _manifest in entries]
    if len(set(names)) != len(names):
        raise ImageError("more than one image for a platform: %s" % ", ".join(names))
    doc = {"schemaVersion": 2, "mediaType": INDEX,
           "manifests": [descriptor(MANIFEST, sha256(body), len(body), platform) for platform, body in entries]}
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical(doc)


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


# -- the registry ------------------------------------------------------------------------------------------------

class RegistryError(ImageError):
    """A registry that refused or failed a request; status is the HTTP status (0: no answer)."""

    def __init__(self, msg, status=0):
        super().__init__(msg)
        self.status = status


def urls_request(username=None, password=None, ca_path=None, validate_certs=True, timeout=60, open_url=None):
    """A request callable on ansible.module_utils.urls.open_url: basic auth, a CA file, no proxy for the registry
    unless the environment names one."""
    if open_url is None:
        from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel
    from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError  # pylint: disable=import-outside-toplevel

    def request(method, url, data=None, headers=None):
        try:
            response = open_url(url, data=data, headers=headers or {}, method=method, validate_certs=validate_certs,
                                url_username=username, url_password=password, force_basic_auth=bool(username),
                                ca_path=ca_path, timeout=timeout, follow_redirects="all")
            return response.getcode(), dict((k.lower(), v) for k, v in response.headers.items()), response.read()
        except HTTPError as exc:
            body = exc.read() if hasattr(exc, "read") else b""
            return exc.code, dict((k.lower(), v) for k, v in (exc.headers or {}).items()), body
        except (URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" in to_native(reason):
                hint = " (the registry's certificate is not trusted here: give ca_path, the CA that signed it)"
            raise RegistryError("no answer from the registry at %s: %s%s" % (url, to_native(reason), hint))

    return request


# The options of a module that reaches a registry (documented in the seedops.deploy.registry doc fragment).
REGISTRY_SPEC = dict(
    registry=dict(type="str", required=True),
    repository=dict(type="str", required=True),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    ca_path=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=60),
)


def registry_from(params, open_url=None):
    """A Registry from a module's REGISTRY_SPEC options."""
    if not re.match(r"^https?://[^/\s]+/?$", params["registry"] or ""):
        raise ImageError("registry %r is not a base URL such as https://repo1.example.com:5000" % (params["registry"],))
    request = urls_request(params["username"], params["password"], params["ca_path"], params["validate_certs"],
                           params["timeout"], open_url)
    return Registry(params["registry"], params["repository"], request, params["username"])


class Registry:
    """One repository of a registry at base_url (https://host:port), through request()."""

    def __init__(self, base_url, repository, request, username=None):
        check_repository(repository)
        self.base = base_url.rstrip("/")
        self.repository = repository
        self.request = request
        self.username = username

    def reference(self, digest):
        """<host[:port]>/<repository>@<digest>: what an engine pulls."""
        return "%s/%s@%s" % (self.base.split("://", 1)[-1], self.repository, digest)

    def url(self, *parts):
        return "%s/v2/%s/%s" % (self.base, self.repository, "/".join(parts))

    def call(self, method, url, data=None, headers=None, ok=(200,), what="request"):
        status, headers, body = self.request(method, url, data, headers)
        if status in ok:
            return status, headers, body
        if status == 401:
            who = ("user %r" % self.username) if self.username else "no credentials"
            raise RegistryError("the registry at %s refused %s (HTTP 401) for %s: check the registry username and "
                                "password" % (self.base, who, what), status)
        if status == 403:
            raise RegistryError("the registry at %s does not let %r %s (HTTP 403)" % (self.base, self.username, what),
                                status)
        detail = to_native(body[:300]) if body else ""
        raise RegistryError("the registry at %s answered HTTP %s to %s %s%s" % (
            self.base, status, method, what, (": " + detail) if detail else ""), status)

    def check(self):
        """The API answers and accepts the credentials (GET /v2/)."""
        self.call("GET", self.base + "/v2/", what="the API check (/v2/)")

    def has_blob(self, digest):
        status, _h, _b = self.call("HEAD", self.url("blobs", digest), ok=(200, 404), what="blob %s" % digest)
        return status == 200

    def push_blob(self, digest, data=None, path=None):
        """Upload a blob (bytes, or the file at path) in one PUT, unless the registry has it. True when uploaded."""
        if self.has_blob(digest):
            return False
        _s, headers, _b = self.call("POST", self.url("blobs", "uploads/"), ok=(202,), what="a blob upload")
        location = headers.get("location")
        if not location:
            raise RegistryError("the registry at %s started an upload without a Location" % self.base)
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        target = "%s%sdigest=%s" % (location, sep, digest)
        if path is None:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
            self.call("PUT", target, data, headers, ok=(201,), what="blob %s" % digest)
            return True
        with open(path, "rb") as body:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(os.fstat(body.fileno()).st_size)}
            self.call("PUT", target, body, headers, ok=(201,), what="blob %s" % digest)
        return True

    def put_manifest(self, reference, body, media_type):
        """PUT a manifest or index by tag or digest; the digest the registry says it stored must be the body's."""
        _s, headers, _b = self.call("PUT", self.url("manifests", reference), body, {"Content-Type": media_type},
                                    ok=(201,), what="manifest %s" % reference)
        stored = headers.get("docker-content-digest")
        if stored and stored != sha256(body):
            raise RegistryError("the registry at %s stored manifest %s as %s, not as its digest %s"
                                % (self.base, reference, stored, sha256(body)))
        return sha256(body)

    def get_manifest(self, reference):
        """(digest, media type, doc) of a tag or digest, or None when the registry has no such manifest. The digest
        is the body's own; asked by digest, a body with another digest is refused."""
        status, headers, body = self.call("GET", self.url("manifests", reference), headers={"Accept": ACCEPT},
                                          ok=(200, 404), what="manifest %s" % reference)
        if status == 404:
            return None
        digest = sha256(body)
        if DIGEST.match(reference) and digest != reference:
            raise RegistryError("the registry at %s answered manifest %s with a body whose digest is %s: refused "
                                "(the manifest was changed or corrupted)" % (self.base, reference, digest))
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError("manifest %s from %s is not JSON" % (reference, self.base))
        return digest, doc.get("mediaType") or headers.get("content-type"), doc

    def get_blob(self, digest, out):
        """Stream blob digest into the file object out; refused (nothing trusted) when its bytes do not match."""
        _s, _h, body = self.call("GET", self.url("blobs", digest), ok=(200,), what="blob %s" % digest)
        got = sha256(body)
        if got != digest:
            raise RegistryError("blob %s from %s has the digest %s: refused (the blob was changed or corrupted)"
                                % (digest, self.base, got))
        out.write(body)
        return len(body)


def read_index(registry, reference):
    """The image index at reference with every platform's manifest, each fetched by digest and checked:
    {"digest", "platforms": {name: {"digest", "config", "layers"}}}. A single manifest (no index) is refused."""
    found = registry.get_manifest(reference)
    if found is None:
        raise RegistryError("%s:%s is not in the registry at %s" % (registry.repository, reference, registry.base), 404)
    digest, media_type, doc = found
    if media_type not in (INDEX, DOCKER_LIST):
        raise ImageError("%s:%s is a single image (%s), not an index of platforms; push it with "
                         "seedops.deploy.image" % (registry.repository, reference, media_type))
    platforms = {}
    for entry in doc.get("manifests") or []:
        name = platform_name(entry.get("platform") or {})
        got = registry.get_manifest(entry["digest"])
        if got is None:
            raise RegistryError("index %s names manifest %s (%s), which the registry does not have"
                                % (digest, entry["digest"], name))
        _d, _t, manifest = got
        platforms[name] = {"digest": entry["digest"], "size": entry.get("size"),
                           "config": (manifest.get("config") or {}).get("digest"),
                           "layers": [layer.get("digest") for layer in manifest.get("layers") or []]}
    return {"digest": digest, "platforms": platforms}


def build_and_push(registry, packages, tag, workdir, image, check_mode=False):
    """Build one image per package ([{"platform", "path"}]) and push blobs, manifests and the index (tagged tag).
    image: {"prefix", "entrypoint", "env", "ports", "labels", "workdir", "user", "mtime"}. Returns what was pushed:
    {"digest", "tag", "previous" (what the tag named before), "manifests": [...], "uploaded": n, "changed"}."""
    check_repository(registry.repository, tag)
    if not packages:
        raise ImageError("packages is empty: give one package per platform")
    built = []
    for package in packages:
        platform = parse_platform(package["platform"])
        layer_path = os.path.join(workdir, "layer-%s.tar.gz" % platform_name(platform).replace("/", "-"))
        layer = package_layer(package["path"], layer_path, image.get("prefix") or "app", image.get("mtime") or 0)
        config = image_config(platform, [layer["diff_id"]], image["entrypoint"], image.get("env"), image.get("ports") or (),
                              image.get("labels"), image.get("workdir"), image.get("user"))
        manifest = image_manifest(config, [layer])
        built.append({"platform": platform, "layer": layer, "layer_path": layer_path, "config": config,
                      "manifest": manifest})
    index = image_index([(b["platform"], b["manifest"]) for b in built])
    registry.check()
    before = registry.get_manifest(tag)
    result = {"digest": sha256(index), "tag": tag, "previous": before[0] if before else None, "uploaded": 0,
              "manifests": [{"platform": platform_name(b["platform"]), "digest": sha256(b["manifest"]),
                             "layer": b["layer"]["digest"], "layer_size": b["layer"]["size"],
                             "config": sha256(b["config"])} for b in built]}
    result["changed"] = result["previous"] != result["digest"]
    if check_mode or not result["changed"]:
        return result
    for b in built:
        result["uploaded"] += registry.push_blob(b["layer"]["digest"], path=b["layer_path"])
        result["uploaded"] += registry.push_blob(sha256(b["config"]), data=b["config"])
        registry.put_manifest(sha256(b["manifest"]), b["manifest"], MANIFEST)
    registry.put_manifest(tag, index, INDEX)
    return result
