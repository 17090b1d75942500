"""OCI images from release packages and the registry client (module_utils/_oci.py): reproducible layers, configs,
manifests and indexes; a push and a read through open_url against a small distribution-API registry on 127.0.0.1
that checks digests and basic auth as Debian's docker-registry does, and can be made to lie."""

import base64
import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading

import pytest
from docker import errors as docker_errors

import fakes

from ansible_collections.seedops.deploy.plugins.module_utils import _oci
from ansible_collections.seedops.deploy.plugins.modules import image_pull


def make_package(path, files, links=None, extra=None):
    """A release package as the package module writes one: bin/<binary>, VERSION."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1234
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for info in extra or []:
            tar.addfile(info)
    return str(path)


@pytest.fixture
def packages(tmp_path):
    return [
        {"platform": "linux/amd64", "path": make_package(tmp_path / "amd64.tar.gz", {
            "bin/app": b"\x7fELF amd64", "VERSION": b"2.0.0\n"})},
        {"platform": "linux/arm64", "path": make_package(tmp_path / "arm64.tar.gz", {
            "bin/app": b"\x7fELF arm64", "VERSION": b"2.0.0\n"})},
    ]


IMAGE = {"prefix": "app", "entrypoint": ["/app/bin/app"], "env": {"LOG_LEVEL": "info"}, "ports": [8080],
         "labels": {"org.opencontainers.image.version": "2.0.0"}, "workdir": "/app", "user": "65534:65534", "mtime": 0}


def test_a_layer_is_the_package_under_the_prefix_and_the_same_bytes_every_time(tmp_path, packages):
    first = _oci.package_layer(packages[0]["path"], str(tmp_path / "l1"), "app")
    second = _oci.package_layer(packages[0]["path"], str(tmp_path / "l2"), "app")
    assert first == second and (tmp_path / "l1").read_bytes() == (tmp_path / "l2").read_bytes()
    raw = (tmp_path / "l1").read_bytes()
    assert first["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest() and first["size"] == len(raw)
    plain = gzip.decompress(raw)
    assert first["diff_id"] == "sha256:" + hashlib.sha256(plain).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == ["app", "app/bin", "app/bin/app", "app/VERSION"]
        assert tar.extractfile("app/bin/app").read() == b"\x7fELF amd64"
        assert {(m.uid, m.gid, m.mtime) for m in members.values()} == {(0, 0, 0)}
        assert members["app/bin/app"].mode == 0o755 and members["app"].isdir()


def test_a_package_that_leaves_itself_is_refused(tmp_path):
    with pytest.raises(_oci.ImageError, match=r"'\.\./etc/passwd' leaves the package"):
        _oci.package_layer(make_package(tmp_path / "p1.tgz", {"../etc/passwd": b"x"}), str(tmp_path / "l"))
    with pytest.raises(_oci.ImageError, match="links to '/etc/shadow', outside the package"):
        _oci.package_layer(make_package(tmp_path / "p2.tgz", {}, {"bin/s": "/etc/shadow"}), str(tmp_path / "l"))
    fifo = tarfile.TarInfo("bin/pipe")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(_oci.ImageError, match="'bin/pipe' is neither a file, a directory nor a symlink"):
        _oci.package_layer(make_package(tmp_path / "p3.tgz", {}, extra=[fifo]), str(tmp_path / "l"))
    (tmp_path / "junk").write_bytes(b"not a tar")
    with pytest.raises(_oci.ImageError, match="cannot read the package .*junk as a tar archive"):
        _oci.package_layer(str(tmp_path / "junk"), str(tmp_path / "l"))
    ok = _oci.package_layer(make_package(tmp_path / "p4.tgz", {"bin/app": b"x"}, {"bin/run": "app"}), str(tmp_path / "l"))
    assert ok["size"] > 0


def test_config_manifest_and_index_are_canonical_json_with_the_platforms_in_order():
    amd64, arm64 = _oci.parse_platform("linux/amd64"), _oci.parse_platform("linux/arm64")
    config = json.loads(_oci.image_config(arm64, ["sha256:" + "1" * 64], ["/app/bin/app"], {"B": "2", "A": "1"}, [8080]))
    assert config["architecture"] == "arm64" and config["os"] == "linux"
    assert config["config"]["Env"] == ["A=1", "B=2"] and config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}
    layer = {"digest": "sha256:" + "2" * 64, "size": 10}
    m1 = _oci.image_manifest(b"{}", [layer])
    m2 = _oci.image_manifest(b"[]", [layer])
    index = json.loads(_oci.image_index([(arm64, m2), (amd64, m1)]))
    assert index["mediaType"] == _oci.INDEX
    assert [(e["platform"]["architecture"], e["digest"]) for e in index["manifests"]] == [
        ("amd64", _oci.sha256(m1)), ("arm64", _oci.sha256(m2))]
    with pytest.raises(_oci.ImageError, match="more than one image for a platform"):
        _oci.image_index([(amd64, m1), (amd64, m2)])
    assert _oci.parse_platform("linux/arm/v7") == {"os": "linux", "architecture": "arm", "variant": "v7"}
    for bad in ("windows/amd64", "linux/x86_64", "linux"):
        with pytest.raises(_oci.ImageError, match="is not os/architecture"):
            _oci.parse_platform(bad)


class FakeRegistry:
    """The distribution API's push and pull paths, with basic auth and digest checks; `tamper` serves a blob or
    manifest with other bytes than were pushed."""

    def __init__(self, user="ci", password="s3cret"):
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.blobs, self.manifests, self.tags = {}, {}, {}
        self.tamper = set()
        self.requests = []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, code, body=b"", headers=None):
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                registry.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != registry.auth:
                    return self.answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                       {"WWW-Authenticate": 'Basic realm="lab"'})
                return registry.route(self, body)

            do_GET = do_HEAD = do_POST = do_PUT = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def route(self, h, body):
        path = h.path.split("?")[0]
        if path == "/v2/":
            return h.answer(200, b"{}")
        parts = path.split("/")
        kind, ref = parts[-2], parts[-1]
        if path.endswith("/blobs/uploads/") and h.command == "POST":
            return h.answer(202, headers={"Location": "/v2/app/blobs/uploads/u1?_state=x"})
        if "/blobs/uploads/" in path and h.command == "PUT":
            digest = h.path.split("digest=")[1]
            if _oci.sha256(body) != digest:
                return h.answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
            self.blobs[digest] = body
            return h.answer(201, headers={"Docker-Content-Digest": digest})
        if kind == "blobs":
            if ref not in self.blobs:
                return h.answer(404)
            data = self.blobs[ref] + (b"!" if ref in self.tamper else b"")
            return h.answer(200, data)
        if kind == "manifests" and h.command == "PUT":
            digest = _oci.sha256(body)
            self.manifests[digest] = (body, h.headers.get("Content-Type"))
            if not ref.startswith("sha256:"):
                self.tags[ref] = digest
            return h.answer(201, headers={"Docker-Content-Digest": digest})
        if kind == "manifests":
            digest = self.tags.get(ref, ref)
            if digest not in self.manifests:
                return h.answer(404)
            data, media_type = self.manifests[digest]
            if digest in self.tamper:
                data = data.replace(b'"schemaVersion":2', b'"schemaVersion":2 ')
            return h.answer(200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest})
        return h.answer(404)


@pytest.fixture
def registry():
    fake = FakeRegistry()
    yield fake
    fake.server.shutdown()


def client(fake, user="ci", password="s3cret", repository="app"):
    params = {"registry": fake.url, "repository": repository, "username": user, "password": password,
              "ca_path": None, "validate_certs": True, "timeout": 10}
    return _oci.registry_from(params)


def test_push_an_index_of_two_platforms_then_read_it_back_by_tag_and_by_digest(tmp_path, packages, registry):
    pushed = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE)
    assert pushed["changed"] and pushed["previous"] is None and pushed["uploaded"] == 4
    assert [m["platform"] for m in pushed["manifests"]] == ["linux/amd64", "linux/arm64"]
    assert registry.tags["2.0.0"] == pushed["digest"]
    found = _oci.read_index(client(registry), "2.0.0")
    assert found["digest"] == pushed["digest"] and set(found["platforms"]) == {"linux/amd64", "linux/arm64"}
    arm = found["platforms"]["linux/arm64"]
    assert arm["layers"] == [pushed["manifests"][1]["layer"]]
    config = json.loads(registry.blobs[arm["config"]])
    assert config["architecture"] == "arm64" and config["config"]["Entrypoint"] == ["/app/bin/app"]
    assert _oci.read_index(client(registry), pushed["digest"])["platforms"] == found["platforms"]
    assert client(registry).reference(pushed["digest"]).startswith("127.0.0.1:")


def test_a_second_push_of_the_same_packages_sends_nothing(tmp_path, packages, registry):
    first = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE)
    puts = len([r for r in registry.requests if r[0] in ("PUT", "POST")])
    again = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE)
    assert again["digest"] == first["digest"] and not again["changed"] and again["uploaded"] == 0
    assert len([r for r in registry.requests if r[0] in ("PUT", "POST")]) == puts
    # Another tag for the same image: the blobs are there, only the index is put.
    other = _oci.build_and_push(client(registry), packages, "stable", str(tmp_path), IMAGE)
    assert other["changed"] and other["uploaded"] == 0 and registry.tags["stable"] == first["digest"]


def test_check_mode_reads_the_tag_and_pushes_nothing(tmp_path, packages, registry):
    result = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE, check_mode=True)
    assert result["changed"] and registry.tags == {} and registry.blobs == {}


def test_wrong_credentials_and_a_missing_tag_are_clear_errors(tmp_path, packages, registry):
    with pytest.raises(_oci.RegistryError, match=r"refused user 'ci' \(HTTP 401\) for the API check \(/v2/\): check "
                                                 "the registry username and password"):
        _oci.build_and_push(client(registry, password="wrong"), packages, "2.0.0", str(tmp_path), IMAGE)
    assert registry.blobs == {}
    with pytest.raises(_oci.RegistryError, match="refused no credentials"):
        client(registry, user=None, password=None).check()
    with pytest.raises(_oci.RegistryError, match="app:9.9.9 is not in the registry at http://127.0.0.1"):
        _oci.read_index(client(registry), "9.9.9")


def test_a_tampered_manifest_or_blob_is_refused(tmp_path, packages, registry):
    pushed = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE)
    arm = pushed["manifests"][1]
    registry.tamper.add(arm["digest"])
    with pytest.raises(_oci.RegistryError, match="answered manifest %s with a body whose digest is sha256:" % arm["digest"]):
        _oci.read_index(client(registry), "2.0.0")
    registry.tamper = {arm["layer"]}
    out = io.BytesIO()
    with pytest.raises(_oci.RegistryError, match="blob %s from .* has the digest sha256:.*refused" % arm["layer"]):
        client(registry).get_blob(arm["layer"], out)
    assert out.getvalue() == b""


def test_bad_names_fail_before_any_request(registry):
    with pytest.raises(_oci.ImageError, match="repository 'App' is not a registry repository name"):
        client(registry, repository="App")
    with pytest.raises(_oci.ImageError, match="tag '-x' is not a tag"):
        _oci.check_repository("app", "-x")
    with pytest.raises(_oci.ImageError, match="is not a base URL"):
        _oci.registry_from({"registry": "repo1:5000", "repository": "app", "username": None, "password": None,
                            "ca_path": None, "validate_certs": True, "timeout": 5})
    assert registry.requests == []


# -- image_pull, end to end in this process: the registry above, an engine that is a fake of the Docker SDK ----------

class FakeImages:
    def __init__(self, stores=None):
        self.held = {}                # image id -> the references the engine holds it by (its RepoDigests)
        self.stores = stores          # the id a pull stores
        self.pulled, self.removed = [], []

    def get(self, image_id):
        if image_id not in self.held:
            raise docker_errors.ImageNotFound("no such image: %s" % image_id)
        return type("Image", (), {"id": image_id, "attrs": {"Id": image_id, "RepoDigests": list(self.held[image_id])}})()

    def pull(self, name, tag=None, auth_config=None):
        self.pulled.append((name, tag, auth_config))
        self.held.setdefault(self.stores, []).append(name + "@" + tag)
        return type("Image", (), {"id": self.stores})()

    def remove(self, image_id, force=False):
        self.removed.append(image_id)
        self.held.pop(image_id, None)

    def list(self):
        return [type("Image", (), {"attrs": attrs})() for attrs in self.listed]

    listed = ()


class FakeContainers:
    made_from = ()

    def list(self, all=False):  # pylint: disable=redefined-builtin
        assert all, "stopped containers count too"
        return [type("Container", (), {"attrs": {"Image": image_id}})() for image_id in self.made_from]


@pytest.fixture
def engine(monkeypatch):
    images = FakeImages()
    images.containers = FakeContainers()
    engine_client = type("Client", (), {"images": images, "containers": images.containers})()
    monkeypatch.setattr(image_pull.docker, "from_env", lambda: engine_client)
    return images


def pull(capsys, registry, digest, **kw):
    args = dict({"registry": registry.url, "repository": "app", "digest": digest, "username": "ci", "password": "s3cret",
                 "platform": "linux/arm64"}, **kw)
    return fakes.run_main(image_pull.main, capsys, args)


def test_image_pull_pulls_the_platforms_manifest_by_digest_and_checks_the_stored_id(
        tmp_path, packages, registry, engine, capsys):
    pushed = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE)
    arm = pushed["manifests"][1]
    engine.stores = arm["config"]
    code, out = pull(capsys, registry, pushed["digest"])
    assert code == 0 and out["changed"] and out["image_id"] == arm["config"] and out["manifest"] == arm["digest"], out
    assert engine.pulled == [(registry.url.split("://")[1] + "/app", arm["digest"], {"username": "ci", "password": "s3cret"})]
    # Held by that reference now: unchanged, nothing pulled.
    code, out = pull(capsys, registry, pushed["digest"])
    assert code == 0 and not out["changed"] and len(engine.pulled) == 1
    # Held under another name only (the registry's earlier address): the container runs it by this reference, so the
    # engine pulls it by that.
    engine.held[arm["config"]] = ["old-address:5000/app@" + arm["digest"]]
    code, out = pull(capsys, registry, pushed["digest"])
    assert code == 0 and out["changed"] and len(engine.pulled) == 2 and out["reference"] in engine.held[arm["config"]]
    code, out = pull(capsys, registry, pushed["digest"], _ansible_check_mode=True, platform="linux/amd64")
    assert code == 0 and out["changed"] and len(engine.pulled) == 2


def test_image_pull_refuses_a_stored_image_that_is_not_the_manifests_config(tmp_path, packages, registry, engine, capsys):
    pushed = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE)
    engine.stores = "sha256:" + "e" * 64
    code, out = pull(capsys, registry, pushed["digest"])
    assert code == 1 and "the engine stored sha256:eee" in out["msg"] and "removed, refused" in out["msg"]
    assert engine.removed == ["sha256:" + "e" * 64]
    code, out = pull(capsys, registry, pushed["digest"], platform="linux/s390x")
    assert code == 1 and "has no image for linux/s390x; it has linux/amd64, linux/arm64" in out["msg"]
    code, out = pull(capsys, registry, "2.0.0")
    assert code == 1 and "resolve the tag first (seedops.deploy.image_info)" in out["msg"]


def image(letter, digests=(), tags=()):
    return {"Id": "sha256:" + letter * 64, "RepoDigests": list(digests), "RepoTags": list(tags)}


def test_unkept_images_are_the_repositorys_digest_pulls_that_nothing_names_or_uses():
    name = "repo1:5000/app"
    images = [
        image("a", [name + "@sha256:" + "1" * 64]),                                  # kept by a release
        image("b", [name + "@sha256:" + "2" * 64]),                                  # nothing names it: removed
        image("c", [name + "@sha256:" + "3" * 64]),                                  # a stopped container's
        image("d", [name + "@sha256:" + "4" * 64], ["repo1:5000/app:latest"]),       # tagged by someone: never
        image("e", ["repo1:5000/other@sha256:" + "5" * 64]),                         # another repository
        image("f", [name + "@sha256:" + "6" * 64, "repo1:5000/other@sha256:" + "6" * 64]),  # shared with another
        image("g", [], ["<none>:<none>"]),                                           # dangling: not ours to judge
        image("h", [name + "@sha256:" + "7" * 64], ["<none>:<none>"]),               # no real tag: removed
    ]
    doomed = _oci.unkept_images(images, name, [name + "@sha256:" + "1" * 64], {"sha256:" + "c" * 64})
    assert doomed == ["sha256:" + "b" * 64, "sha256:" + "h" * 64]
    # A name that is a prefix of another repository's is not that repository.
    assert _oci.unkept_images([image("b", ["repo1:5000/app2@sha256:" + "2" * 64])], name, [], set()) == []


def test_image_pull_with_keep_removes_the_images_no_kept_release_names(tmp_path, packages, registry, engine, capsys):
    pushed = _oci.build_and_push(client(registry), packages, "2.0.0", str(tmp_path), IMAGE)
    arm = pushed["manifests"][1]
    name = registry.url.split("://")[1] + "/app"
    engine.held[arm["config"]] = [name + "@" + arm["digest"]]
    engine.listed = [image("a", [name + "@sha256:" + "1" * 64]), image("b", [name + "@sha256:" + "2" * 64]),
                     image("c", [name + "@sha256:" + "3" * 64]), image("d", [name + "@sha256:" + "4" * 64], ["app:x"]),
                     {"Id": arm["config"], "RepoDigests": [name + "@" + arm["digest"]], "RepoTags": []}]
    engine.containers.made_from = ["sha256:" + "c" * 64]
    # Check mode says what would go and removes nothing.
    code, out = pull(capsys, registry, pushed["digest"], keep=[name + "@sha256:" + "1" * 64], _ansible_check_mode=True)
    assert code == 0 and out["changed"] and out["removed"] == ["sha256:" + "b" * 64] and engine.removed == [], out
    code, out = pull(capsys, registry, pushed["digest"], keep=[name + "@sha256:" + "1" * 64])
    assert code == 0 and out["changed"] and out["removed"] == ["sha256:" + "b" * 64], out
    assert engine.removed == ["sha256:" + "b" * 64] and engine.pulled == []
    # Without keep nothing is removed, and a pull that finds its image held is unchanged.
    code, out = pull(capsys, registry, pushed["digest"])
    assert code == 0 and not out["changed"] and out["removed"] == [] and engine.removed == ["sha256:" + "b" * 64]
