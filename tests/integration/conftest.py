"""Integration fixtures: the lab (brought up once per session, idempotently) and helpers to run
lab commands and playbooks against it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
LAB_TOOL = os.path.join(REPO_ROOT, "tests", "lab", "lab.py")
VENV_BIN = os.path.dirname(sys.executable)
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
    re.M,
)


def _lab_of_this_worker() -> None:
    """Under pytest-xdist (`make integration` runs two workers, each given whole files), each worker needs a lab of
    its own: worker gw0 keeps the default lab (or SEEDOPS_LAB_NAME, SEEDOPS_LAB_BASE_PORT), worker gwN takes that name
    with N+1 appended and its published ports 1000 x N higher (seedops-lab2 from 43200). Set in the environment, so
    every lab.py, demo.py and playbook this worker starts uses the same lab."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not re.fullmatch(r"gw[1-9][0-9]*", worker):
        return
    n = int(worker[2:])
    os.environ["SEEDOPS_LAB_NAME"] = f"{os.environ.get('SEEDOPS_LAB_NAME', 'seedops-lab')}{n + 1}"
    os.environ["SEEDOPS_LAB_BASE_PORT"] = str(int(os.environ.get("SEEDOPS_LAB_BASE_PORT", "42200")) + 1000 * n)


_lab_of_this_worker()

# The small labs test files bring up themselves, late in the run: test_lab_lifecycle.py's and test_mixed.py's.
LABTEST_BASE_PORT = int(os.environ.get("SEEDOPS_LABTEST_BASE_PORT", "42600"))
LABTEST_MOVED_BASE_PORT = LABTEST_BASE_PORT + 100  # where test_lab_lifecycle.py moves its lab
MIXED_BASE_PORT = int(os.environ.get("SEEDOPS_MIXED_BASE_PORT", "44200"))


def _reserve_the_labs_ports() -> None:
    """A lab's published ports lie in the kernel's ephemeral range, and lab.py up reserves its own only when it comes
    up: a lab that comes up late found 127.0.0.1:42602 held by an outgoing connection of an earlier test (a fresh-clone
    run's test_lab_lifecycle.py, 2026-12-04). So each worker reserves, before any test, the ports of every lab this run
    brings up (needs root; without it lab.py up says so when it cannot)."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "lab"))
    import lab as lab_tool  # pylint: disable=import-outside-toplevel

    labs = [(os.environ.get("SEEDOPS_LAB_NAME", "seedops-lab"), int(os.environ.get("SEEDOPS_LAB_BASE_PORT", "42200"))),
            ("seedops-labtest", LABTEST_BASE_PORT), ("seedops-labtest", LABTEST_MOVED_BASE_PORT),
            ("seedops-mixed", MIXED_BASE_PORT)]
    for name, base in labs:
        lab_tool.reserve_ports(*lab_tool.port_span(name, base))


_reserve_the_labs_ports()

# The order `make integration`'s two workers take the test files in (it passes --no-loadscope-reorder, so
# pytest-xdist's queue follows the collection order, which pytest_collection_modifyitems sets here): mostly the longest
# first, as a fresh-clone run's --durations measured them (seconds, 2026-12-06), so that the worker that frees up first
# takes what is left. pytest-xdist's own order (most tests first) had test_mixed.py, one test of 300 s, last; it comes
# after two long files here, when the mixed lab's arm64 image, made in the background at a lower priority from the
# start of integration, is ready or nearly (its `lab.py up` waits for it: 630 s in one fresh-clone run, 990 s in the
# next, once the lab's hosts had the CPU weight lab.py gives them). test_site.py and test_jvm.py stay last, as in that
# order: they are the only files that run after site.yml's host preparation (firewall, access, env_config) on their
# lab.
# A file not listed goes last; the order of the tests within a file stays as written.
FILE_ORDER = [
    "test_deploy.py",  # 3295: one worker for the whole run
    "test_access.py",  # 562
    "test_patch.py",  # 421
    "test_mixed.py",  # 299
    "test_firewall.py",  # 213
    "test_runtimes.py",  # 181
    "test_docker_role.py",  # 159
    "test_build.py",  # 148
    "test_artifact.py",  # 141
    "test_lb.py",  # 108
    "test_release.py",  # 105
    "test_service.py",  # 97
    "test_env_config.py",  # 80
    "test_registry.py",  # 21
    "test_lab_lifecycle.py",  # 20
    "test_lab_hosts.py",
    "test_sample_app.py",
    "test_site.py",  # 230
    "test_jvm.py",  # 117
]


def pytest_collection_modifyitems(items):
    rank = {name: n for n, name in enumerate(FILE_ORDER)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.path)), len(rank)))


_NEXT_TEST = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):  # pylint: disable=unused-argument
    """Notes the test this process runs next (None: none, the session ends), before the fixtures' teardowns run."""
    _NEXT_TEST["item"] = nextitem


def more_tests_follow() -> bool:
    """In a fixture's teardown: whether this process runs another test after this one (under pytest-xdist, on the same
    worker and so on the same lab). A teardown that only puts the lab back for the tests that follow can skip that
    when none does: the run ends there."""
    return _NEXT_TEST.get("item") is not None


def lab_cmd(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run tests/lab/lab.py with this interpreter; stdout and stderr captured as text."""
    result = subprocess.run(
        [sys.executable, LAB_TOOL, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL, timeout=900, check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class LabInfo:
    name: str
    state_dir: str
    inventory: str
    hosts: list

    def host(self, name: str) -> dict:
        return next(h for h in self.hosts if h["name"] == name)

    def ssh(self, host: str, command: str) -> subprocess.CompletedProcess:
        """Run a shell command on a lab host over real SSH."""
        return subprocess.run(
            ["ssh", "-F", os.path.join(self.state_dir, "ssh_config"), "-o", "BatchMode=yes", host, command],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
        )


def sh(lab: LabInfo, host: str, command: str, check: bool = True) -> str:
    """Run a shell command on a lab host over SSH and return its stdout without surrounding white space. A non-zero
    exit status fails the test, with the command's output, unless check=False."""
    result = lab.ssh(host, command)
    if check:
        assert result.returncode == 0, f"{host}: {command}: exit {result.returncode}: {result.stdout}{result.stderr}"
    return result.stdout.strip()


def flat(output) -> str:
    """Output with its line breaks undone (the YAML callback folds long messages): a run's stdout, or a string."""
    text = output if isinstance(output, str) else output.stdout
    return " ".join(text.split())


def file_sha256(path) -> str:
    """The SHA-256 of a file on the controller, as hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def refused(result, recap, host: str, *fragments: str) -> str:
    """Assert that a playbook run failed having changed nothing on `host`, and that its output (line breaks undone)
    holds every fragment. Returns that output."""
    assert result.returncode != 0 and recap[host]["changed"] == 0, result.stdout[-3000:]
    out = flat(result)
    for fragment in fragments:
        assert fragment in out, (fragment, out[-3000:])
    return out


def load_lab(name: str, state_root: str | None = None) -> LabInfo:
    root = state_root or os.environ.get("SEEDOPS_LAB_STATE") or os.path.join(REPO_ROOT, ".lab")
    state_dir = os.path.join(root, name)
    with open(os.path.join(state_dir, "lab.json"), encoding="utf-8") as f:
        doc = json.load(f)
    return LabInfo(name, state_dir, os.path.join(state_dir, "inventory.yml"), doc["hosts"])


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker client; the local engine is started (and on Debian installed) when none runs."""
    sys.path.insert(0, os.path.dirname(LAB_TOOL))
    import lab as lab_tool  # pylint: disable=import-outside-toplevel

    return lab_tool.connect()


@pytest.fixture(scope="session")
def lab() -> LabInfo:
    """The default lab (3 app hosts unless SEEDOPS_LAB_APPS says otherwise), up and reachable."""
    name = os.environ.get("SEEDOPS_LAB_NAME", "seedops-lab")
    result = lab_cmd("--name", name, "up", check=True)
    print(result.stdout)
    return load_lab(name)


@pytest.fixture(scope="session")
def execution_environment() -> str:
    """The collection's execution environment image (awx/ee/execution-environment.yml, built by tests/lab/ee.py with
    ansible-builder on the lab's Debian image; seconds when `make test` built it in the background already)."""
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "lab", "ee.py"), "build"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1200, check=False)
    assert result.returncode == 0, f"building the execution environment failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def run_playbook(playbook: str, inventory: str, *args: str, cwd: str = REPO_ROOT, env: dict | None = None,
                 kill_at: str | None = None):
    """ansible-playbook from the project's environment; returns (result, {host: recap counts}).
    kill_at: SIGKILL the controller at that point of the run (tests/integration/callbacks/kill_at.py); the
    playbook then runs in its own process group, which is all that gets killed."""
    full_env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **(env or {})}
    if kill_at:
        full_env.update(SEEDOPS_KILL_AT=kill_at, ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO_ROOT, "tests", "integration",
                                                                                       "callbacks"),
                        ANSIBLE_CALLBACKS_ENABLED="seedops.deploy.deploy_report,kill_at")
    result = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook, *args],
        capture_output=True, text=True, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, timeout=900, check=False,
        start_new_session=bool(kill_at),
    )
    recap = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
             for m in RECAP.finditer(result.stdout)}
    return result, recap


def module_command(lab: LabInfo, host: str, module: str, args: dict, check=False, diff=False, become=True):
    cmd = [os.path.join(VENV_BIN, "ansible"), host, "-i", lab.inventory, "-m", module, "-a", json.dumps(args)]
    if become:
        cmd.append("--become")
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    return cmd


MODULE_ENV = {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}


def parse_module_output(host: str, stdout: str) -> dict:
    """The JSON result of one host in an ad-hoc run (minimal callback: 'host | STATUS => {...}')."""
    match = re.search(rf"^{re.escape(host)} \| ([A-Z!]+) => ", stdout, re.M)
    if not match:
        raise AssertionError(f"no result for {host} in:\n{stdout}")
    result, _end = json.JSONDecoder().raw_decode(stdout, match.end())
    result["_status"] = match.group(1)
    return result


def run_module(lab: LabInfo, host: str, module: str, args: dict, check=False, diff=False, become=True,
               hosts=None):
    """Run one module on lab hosts through the ansible CLI (`host` may be a pattern; then `hosts`
    lists the hosts to collect). Returns the result dict, or {host: result} with `hosts`, each with
    '_status' (SUCCESS, CHANGED, FAILED!, UNREACHABLE!), '_stdout' (diffs) and '_stderr' (warnings)."""
    result = subprocess.run(
        module_command(lab, host, module, args, check, diff, become), capture_output=True, text=True,
        env={**os.environ, **MODULE_ENV}, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, timeout=900, check=False,
    )
    parsed = {}
    for name in hosts or [host]:
        parsed[name] = parse_module_output(name, result.stdout)
        parsed[name]["_stdout"] = result.stdout
        parsed[name]["_stderr"] = result.stderr  # warnings are printed there, not kept in the result
    return parsed if hosts else parsed[host]


def copy_to(lab: LabInfo, host: str, src, dest: str, **args) -> dict:
    """Copy a file (or with a trailing slash, a directory's content) from the controller to a lab host with
    ansible.builtin.copy, as root; fails the test unless it worked. Returns the module's result."""
    result = run_module(lab, host, "ansible.builtin.copy", {"src": str(src), "dest": dest, **args})
    assert result["_status"] in ("SUCCESS", "CHANGED"), result
    return result


@pytest.fixture
def served_repo(lab):
    """nginx on repo1 serving /srv/artifacts: left as it is when it runs (site.yml or repo.yml set it up before),
    else set up by tests/integration/playbooks/repo.yml, so that a test that publishes there passes alone."""
    if lab.ssh("repo1", "systemctl is-active --quiet nginx && test -d /srv/artifacts").returncode != 0:
        result, recap = run_playbook("tests/integration/playbooks/repo.yml", lab.inventory)
        assert result.returncode == 0 and recap["repo1"]["failed"] == 0, result.stdout[-3000:]
    return f"http://{lab.host('repo1')['address']}"


@pytest.fixture(scope="session")
def app_packages(tmp_path_factory):
    """The sample service built for versions 1.0.0 and 2.0.0, and a broken 3.0.0 (amd64 only)."""
    out = tmp_path_factory.mktemp("app-dist")
    build = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh")
    for version, extra in (("1.0.0", []), ("2.0.0", []), ("3.0.0", ["--broken"])):
        subprocess.run([build, "-o", str(out / version), "-p", "linux/amd64", *extra, version], check=True,
                       capture_output=True)
    return {v: str(out / v / f"seedops-app-{v}-linux-amd64.tar.gz") for v in ("1.0.0", "2.0.0", "3.0.0")}


DEMO_DIST = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "dist")


@pytest.fixture(scope="session")
def demo_packages():
    """The sample service's packages where the lab's repo host is fed from (tests/fixtures/app/dist/VERSION/):
    1.0.0 and 2.0.0, a broken 3.0.0 whose health check always fails, and a 4.0.0 (amd64 only) whose health check
    passes while it answers every other request 500. Builds are reproducible."""
    build = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh")
    for version, extra in (("1.0.0", []), ("2.0.0", []), ("3.0.0", ["--broken"]),
                           ("4.0.0", ["--fail-share", "1", "-p", "linux/amd64"])):
        subprocess.run([build, *extra, version], check=True, capture_output=True)
    return DEMO_DIST


# The demo's settings in the tests: a service that stops faster than its slow requests (1 s), so that only a drain
# before each restart keeps them whole, and zero failed requests shows the drain at work.
DEMO_SETTINGS = "seedops_demo_shutdown_timeout=100ms"


def run_demo(lab_name: str, reports, summary, *settings: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    """tests/lab/demo.py, the README's main command (site.yml, then 2.0.0 rolling under load), on that lab with
    DEMO_SETTINGS and `settings` as extra variables; the deploy reports go to `reports`, the load client's summary to
    `summary`."""
    command = [os.path.join(VENV_BIN, "python"), os.path.join(REPO_ROOT, "tests", "lab", "demo.py"), "--lab", lab_name,
               "--json", str(summary)]
    for setting in (DEMO_SETTINGS, *settings):
        command += ["-e", setting]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout, check=False,
                          env={**os.environ, "SEEDOPS_DEPLOY_REPORT_DIR": str(reports)})


def service_version(lab: LabInfo, host: str, timeout: float = 5) -> dict:
    """The sample service's /version answer (JSON) on port 8080, read on the host over SSH; {} when none came."""
    out = lab.ssh(host, "python3 -c \"import urllib.request as u; "
                        f"print(u.urlopen('http://127.0.0.1:8080/version', timeout={timeout}).read().decode())\"").stdout
    return json.loads(out) if out.strip() else {}


def load_client():
    """tests/lab/load.py as a module (the bounded load client)."""
    sys.path.insert(0, os.path.dirname(LAB_TOOL))
    import load  # pylint: disable=import-outside-toplevel

    return load


def answering(port, n=24):
    """The app hosts that answered n requests through the lb."""
    seen = set()
    for _i in range(n):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                seen.add(r.read().decode().split("host=")[1].strip())
        except OSError:
            pass
    return seen


# -- the image registry on repo1 (test_registry.py, test_docker_role.py) ------------------------------------------

REGISTRY_USERS = [{"name": "ci", "password": "lab-ci-secret"}]


@pytest.fixture(scope="module")
def registry(lab, tmp_path_factory):
    """The image registry on repo1 (playbooks/registry.yml) with a lab CA made for this file: its URL from the
    controller (outside, the published port) and from the lab network (inside), the CA file and the vars file."""
    repo = lab.host("repo1")
    sys.path.insert(0, os.path.dirname(LAB_TOOL))
    import registry as lab_registry  # pylint: disable=import-outside-toplevel

    made = lab_registry.registry_vars(str(tmp_path_factory.mktemp("registry")), repo["address"], REGISTRY_USERS)
    extra = made["vars"]
    result, recap = run_playbook("playbooks/registry.yml", lab.inventory, "-e", f"@{extra}")
    assert result.returncode == 0 and recap["repo1"]["failed"] == 0, result.stdout[-3000:]
    return {"outside": f"https://127.0.0.1:{repo['ports']['5000/tcp']}", "inside": f"https://{repo['address']}:5000",
            "host": f"{repo['address']}:5000", "address": repo["address"], "ca": made["ca"], "vars": extra}


@pytest.fixture(scope="session")
def image_packages(tmp_path_factory):
    """The sample service 2.0.0 built for linux/amd64 and linux/arm64, as the build role packages it."""
    out = tmp_path_factory.mktemp("image-dist")
    build = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh")
    subprocess.run([build, "-o", str(out), "-p", "linux/amd64 linux/arm64", "2.0.0"], check=True, capture_output=True)
    return [{"platform": p, "path": str(out / f"seedops-app-2.0.0-{p.replace('/', '-')}.tar.gz")}
            for p in ("linux/amd64", "linux/arm64")]


def push_image(lab, registry, packages, password=None, tag="2.0.0"):
    """seedops.deploy.image from the controller: the sample service's packages as one index, tagged tag."""
    return run_module(lab, "localhost", "seedops.deploy.image", {
        "registry": registry["outside"], "repository": "seedops-app", "tag": tag, "username": "ci",
        "password": password or REGISTRY_USERS[0]["password"], "ca_path": registry["ca"], "packages": packages,
        "entrypoint": ["/app/bin/seedops-app"], "ports": [8080]}, become=False)
