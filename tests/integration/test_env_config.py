"""The env_config role on a lab host: /etc/environment, an application's environment file with secrets, sysctl
values, login and systemd limits, the time zone and /etc/hosts entries, each checked for its real effect; reruns and
check mode change nothing; secrets never reach the output; bad input fails once, clearly, and changes nothing.

The lab hosts are containers: Docker mounts /proc/sys read-only, bind-mounts /etc/hosts and /etc/resolv.conf. For the
sysctl tests the fixture makes /proc/sys/net writable (a bind mount of it, read-write) - only the host's own network
namespace is behind it, as on a VM - and undoes that, with the values it found, at the end."""

import json
import shlex

import pytest

from conftest import flat, refused, run_playbook, sh

pytestmark = pytest.mark.lab

HOST = "app1"
PLAYBOOK = "tests/integration/playbooks/env_config.yml"
SECRET = "lab-secret-never-printed"
SYSCTLS = {"net.core.somaxconn": "8192", "net.ipv4.ip_local_port_range": "20000 60999"}
ENV_FILE = "/etc/default/seedops-envtest"
TRICKY_FILE = "/etc/seedops-envtest.tricky"
# Values systemd must get back exactly: raw UTF-8, escapes it keeps literally, the four characters it unescapes in
# double quotes, control characters, white space at the ends, comment characters.
TRICKY = {
    "UTF8": "café ☕ Grüße", "LITERAL_ESCAPES": "\\u00e9 and \\n stay as typed", "QUOTES": 'say "hi" it\'s',
    "BACKSLASHES": "C:\\dir\\ and \\", "DOLLAR": "$HOME ${USER} $$", "BACKTICK": "`id`", "TAB": "a\tb",
    "ESCAPE": "\x1b[1mbold", "SPACES": "  both ends  ", "COMMENT": "# not ; a comment", "EMPTY": "",
}
FOREIGN_LINE = "OTHER_TOOL=keep-me"
# Everything the test playbook set, taken back (the role removes the files it owns when their setting is empty).
CLEANUP = {
    "env_config_environment": {"SEEDOPS_ENVTEST": None},
    "env_config_env_files": [{"name": "seedops-envtest", "state": "absent"},
                             {"path": "/etc/seedops-envtest.public", "state": "absent"},
                             {"path": TRICKY_FILE, "state": "absent"}],
    "env_config_sysctl": {}, "env_config_limits": [], "env_config_systemd_limits": {},
    "env_config_timezone": "Etc/UTC", "env_config_hosts": [],
}


def play(lab, *args, extra=None):
    more = ["-e", json.dumps(extra)] if extra else []
    return run_playbook(PLAYBOOK, lab.inventory, "-e", f"target_hosts={HOST}", *more, *args)


def host_state(lab):
    """What a failed run must leave as it was."""
    return sh(lab, HOST, "sudo sha256sum /etc/environment /etc/hosts /etc/timezone /etc/sysctl.d/90-seedops.conf "
                         f"{ENV_FILE}; sudo ls -l {TRICKY_FILE} 2>&1 || true; readlink /etc/localtime; "
                         "/sbin/sysctl -n net.core.somaxconn")


@pytest.fixture(scope="module")
def env_config(lab):
    sysctl_before = {k: sh(lab, HOST, f"/sbin/sysctl -n {k}").replace("\t", " ") for k in SYSCTLS}
    sh(lab, HOST, "mountpoint -q /proc/sys/net || { sudo mount --bind /proc/sys/net /proc/sys/net && "
                  "sudo mount -o remount,bind,rw /proc/sys/net; }")
    sh(lab, HOST, f"grep -qx {FOREIGN_LINE} /etc/environment || echo {FOREIGN_LINE} | sudo tee -a /etc/environment")
    result, recap = play(lab)
    assert result.returncode == 0 and recap[HOST]["failed"] == 0, result.stdout[-4000:]
    assert SECRET not in result.stdout + result.stderr
    yield result
    cleanup, _recap = play(lab, extra=CLEANUP)
    restore = " ".join(shlex.quote(f"{k}={v}") for k, v in sysctl_before.items())
    lab.ssh(HOST, f"mountpoint -q /proc/sys/net || {{ sudo mount --bind /proc/sys/net /proc/sys/net && "
                  f"sudo mount -o remount,bind,rw /proc/sys/net; }}; sudo /sbin/sysctl -q -w {restore}; "
                  f"sudo umount /proc/sys/net; sudo sed -i '/^{FOREIGN_LINE}$/d' /etc/environment")
    assert cleanup.returncode == 0, cleanup.stdout[-3000:]


def test_rerun_and_check_mode_change_nothing(lab, env_config):
    # The rerun also asks for resolvers with env_config_resolv_managed=skip: Docker's bind-mounted resolv.conf is
    # left alone with a notice.
    result, recap = play(lab, extra={"env_config_resolvers": ["10.0.0.2"], "env_config_resolv_managed": "skip"})
    assert result.returncode == 0 and recap[HOST]["changed"] == 0, result.stdout[-3000:]
    assert "/etc/resolv.conf is a mount point (the container runtime provides it)" in flat(result)
    check, recap = play(lab, "--check", "--diff")
    assert check.returncode == 0 and recap[HOST]["changed"] == 0, check.stdout[-3000:]
    assert SECRET not in check.stdout + check.stderr


def test_environment_and_env_files(lab, env_config):
    environment = sh(lab, HOST, "cat /etc/environment").splitlines()
    assert 'SEEDOPS_ENVTEST="hello world"' in environment and FOREIGN_LINE in environment
    # A new login gets it (pam_env).
    assert sh(lab, HOST, 'echo "$SEEDOPS_ENVTEST"') == "hello world"
    assert sh(lab, HOST, f"sudo stat -c '%a %U %G' {ENV_FILE}") == "640 root adm"
    assert sh(lab, HOST, "stat -c '%a %U %G' /etc/seedops-envtest.public") == "644 root root"
    lines = sh(lab, HOST, f"sudo cat {ENV_FILE}").splitlines()[1:]
    assert lines == [f'API_TOKEN="{SECRET}"', 'GREETING="say \\"hi\\" to \\$HOME"', 'PORT="8080"']
    # systemd reads it as written (EnvironmentFile=): quotes undone, no $ expansion.
    out = sh(lab, HOST, f"sudo systemd-run --quiet --pipe --wait -p EnvironmentFile={ENV_FILE} /usr/bin/printenv GREETING "
                        "API_TOKEN PORT")
    assert out.splitlines() == ['say "hi" to $HOME', SECRET, "8080"]


def test_env_file_values_reach_systemd_exactly(lab, env_config):
    result, recap = play(lab, extra={"env_config_env_files": [{"path": TRICKY_FILE, "env": TRICKY}]})
    assert result.returncode == 0 and recap[HOST]["changed"] == 1, result.stdout[-3000:]
    assert "café ☕ Grüße" in sh(lab, HOST, f"sudo cat {TRICKY_FILE}"), "raw UTF-8, not \\u escapes"
    show = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"
    out = sh(lab, HOST, f"sudo systemd-run --quiet --pipe --wait -p EnvironmentFile={TRICKY_FILE} /usr/bin/python3 -c "
                        f"{shlex.quote(show)} {' '.join(TRICKY)}")
    assert json.loads(out) == TRICKY


def test_secrets_never_printed_even_with_diff_and_verbose(lab, env_config):
    changed_secret = "second-secret-also-hidden"
    result, recap = play(lab, "--diff", "-v", "-e", f"env_test_secret={changed_secret}")
    assert result.returncode == 0 and recap[HOST]["changed"] == 1, result.stdout[-3000:]
    assert SECRET not in result.stdout + result.stderr
    assert changed_secret not in result.stdout + result.stderr
    assert f'API_TOKEN="{changed_secret}"' in sh(lab, HOST, f"sudo cat {ENV_FILE}")
    result, recap = play(lab, "--diff")
    assert result.returncode == 0 and recap[HOST]["changed"] == 1
    assert SECRET not in result.stdout + result.stderr and changed_secret not in result.stdout + result.stderr


def test_sysctl_values(lab, env_config):
    for key, value in SYSCTLS.items():
        assert sh(lab, HOST, f"/sbin/sysctl -n {key}").split() == value.split()
    assert sh(lab, HOST, "cat /etc/sysctl.d/90-seedops.conf").splitlines()[1:] == [
        "net.core.somaxconn = 8192", "net.ipv4.ip_local_port_range = 20000 60999"]


def test_limits(lab, env_config):
    assert sh(lab, HOST, "cat /etc/security/limits.d/90-seedops.conf").splitlines()[-1] == "debian soft nofile 4096"
    assert sh(lab, HOST, "ulimit -Sn") == "4096"  # a new login, through pam_limits
    show = sh(lab, HOST, "systemctl show -p DefaultLimitNOFILE -p DefaultLimitNOFILESoft").splitlines()
    assert sorted(show) == ["DefaultLimitNOFILE=524288", "DefaultLimitNOFILESoft=65536"]


def test_timezone_and_hosts(lab, env_config):
    assert sh(lab, HOST, "readlink /etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert sh(lab, HOST, "cat /etc/timezone") == "Europe/Berlin"
    assert sh(lab, HOST, "date +%Z") in ("CET", "CEST")
    assert sh(lab, HOST, "getent hosts seedops-envtest").split() == ["10.11.12.13", "seedops-envtest.example",
                                                                     "seedops-envtest"]
    # Written in place: still Docker's bind-mounted file, with Docker's own entries.
    assert sh(lab, HOST, "findmnt -rn -o TARGET /etc/hosts") == "/etc/hosts"
    assert sh(lab, HOST, "getent hosts $(hostname)").split()[1] == HOST


def test_bad_input_fails_once_and_changes_nothing(lab, env_config):
    before = host_state(lab)
    result, recap = play(lab, extra={
        "env_config_sysctl": {"net.core.no_such_key": 1, "net.core.somaxconn": 4096},
        "env_config_timezone": "Mars/Olympus_Mons",
        "env_config_hosts": [{"ip": "10.0.0.300", "names": ["seedops-envtest"]}],
        "env_config_resolvers": ["10.0.0.2"],
        "env_config_env_files": [{"path": TRICKY_FILE, "env": {"MY-VAR": "x", "PEM": "line 1\nline 2"},
                                  "secret_env": {"TOKEN": "bad\x00secret"}}],
    })
    refused(result, recap, HOST,
            f'env_config_env_files[0] ({TRICKY_FILE}) env: "MY-VAR" is not a variable name - use letters, digits and _',
            f"env_config_env_files[0] ({TRICKY_FILE}) env: the value of PEM holds a line break",
            f"env_config_env_files[0] ({TRICKY_FILE}) secret_env: the value of TOKEN holds a NUL character",
            "env_config_sysctl: unknown key net.core.no_such_key (no /proc/sys/net/core/no_such_key",
            'env_config_timezone: unknown time zone "Mars/Olympus_Mons"',
            'env_config_hosts[0]: "10.0.0.300" is not an IP address',
            "env_config_resolvers: /etc/resolv.conf is a mount point (the container runtime provides it)",
            "Nothing was changed")
    assert host_state(lab) == before

    refused(*play(lab, extra={"env_config_limits": [{"domain": "*", "type": "medium", "item": "nofile", "value": "1"}]}),
            HOST, "medium", "soft, hard, -")
    refused(*play(lab, "-e", "env_test_os_family=Gentoo", extra={"env_config_timezone": "Etc/UTC"}), HOST,
            "the env_config role does not support the OS family Gentoo", "supported: Debian, RedHat")
    assert host_state(lab) == before


def test_read_only_sysctl_fails_clearly(lab, env_config):
    before = host_state(lab)
    sh(lab, HOST, "sudo umount /proc/sys/net")  # as Docker has it: read-only
    try:
        out = refused(*play(lab, extra={"env_config_sysctl": {**SYSCTLS, "net.core.somaxconn": 4096}}), HOST,
                      "env_config_sysctl: net.core.somaxconn cannot be set on this host",
                      "set env_config_sysctl_apply=false to only write /etc/sysctl.d/90-seedops.conf")
        assert "ip_local_port_range cannot" not in out  # already has its value: nothing to write
        assert host_state(lab) == before
    finally:
        sh(lab, HOST, "sudo mount --bind /proc/sys/net /proc/sys/net && sudo mount -o remount,bind,rw /proc/sys/net")
