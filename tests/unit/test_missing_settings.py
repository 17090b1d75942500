"""Settings a playbook cannot run with stop it before any host is reached, with a message naming what is wrong and
what to give instead: a required setting left unset (not Jinja's "'deploy_app' is undefined" from a default made from
it), and the deploy settings the plan checks first (only those that fail are named). The inventory's hosts are
127.0.0.1 on port 1: nothing answers there, and nothing is sent, since the run stops before its first connection."""
import os
import subprocess
import sys

import pytest

import ansible_collections.seedops.deploy as collection

COLLECTION = os.path.realpath(collection.__path__[0])
INVENTORY = """all:
  vars: {ansible_host: 127.0.0.1, ansible_port: 1}
  children:
    app: {hosts: {a1: {}, a2: {}}}
    lb: {hosts: {l1: {}}}
"""


def run(tmp_path, playbook, *args):
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=os.path.join(COLLECTION, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.dirname(os.path.dirname(os.path.dirname(collection.__path__[0]))))
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                           str(tmp_path / "hosts.yml"), playbook, *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False, stdin=subprocess.DEVNULL)


def refused(tmp_path, playbook, *args):
    """The flattened output of a run of the collection's `playbook` that must stop before any host is reached."""
    result = run(tmp_path, os.path.join(COLLECTION, "playbooks", playbook), *args)
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, out[-3000:]
    assert "UNREACHABLE" not in out, out[-3000:]
    return out


@pytest.mark.parametrize("playbook", ["deploy.yml", "site.yml", "status.yml"])
def test_deploy_app_unset(tmp_path, playbook):
    result = run(tmp_path, os.path.join(COLLECTION, "playbooks", playbook), "-e", "deploy_version=1.0.0")
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert ("deploy_app is not set: it names the application, and by default its systemd service, base directory "
            "/srv/<deploy_app>, artifacts and fleet lock. Set it for the app hosts, for example deploy_app: shop in "
            "group_vars/app.yml") in out, out[-3000:]
    assert "UNREACHABLE" not in out and "'deploy_app' is undefined" not in out


def test_app_service_name_unset(tmp_path):
    (tmp_path / "play.yml").write_text("- hosts: a1\n  gather_facts: false\n  roles: [seedops.deploy.app_service]\n")
    result = run(tmp_path, str(tmp_path / "play.yml"))
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert ("app_service_name is not set: it names the service, its systemd unit, its user and /srv/<name>. Set it for "
            "the app hosts, for example app_service_name: shop in group_vars/app.yml") in out, out[-3000:]
    assert "UNREACHABLE" not in out


PACKAGE = ("A package release: give exactly one of deploy_artifact_url and deploy_artifact_src (%s), and for a URL either "
           "deploy_checksum_url (a SHA256SUMS file) or deploy_checksum (sha256:<hex>).")
SOURCE = '{"deploy_artifact_src": "/tmp/shop.tar.gz"}'


@pytest.mark.parametrize("settings, says", [
    (['{"deploy_version": "../x"}', SOURCE],
     'Check the deploy variables: deploy_release_id "../x" (by default deploy_version) may hold only letters, digits and '
     '. _ + ~ -, up to 128, starting with a letter or digit, and no "..". Nothing was changed.'),
    (['{"deploy_version": "1.0.0"}'], "Check the deploy variables: " + PACKAGE % "neither is set" + " Nothing was changed."),
    (['{"deploy_version": "1.0.0", "deploy_artifact_url": "https://repo/shop.tar.gz"}', SOURCE],
     "Check the deploy variables: " + PACKAGE % "both are set" + " Nothing was changed."),
    (['{"deploy_app": "shop app", "deploy_version": "1.0.0", "deploy_kind": "container", '
      '"deploy_image_registry": "http://registry:5000"}'],
     'Check the deploy variables: deploy_app "shop app" must be a plain service name (letters, digits, _ . @ -). A '
     'container release: give deploy_image_registry, the registry as the hosts reach it (https://host:port, now '
     '"http://registry:5000"), and deploy_image_repository (now "shop app"). Nothing was changed.'),
    # Settings of later steps: checked here, not once a batch has drained its host.
    # Whoever sits between the hosts and a plain-http repository could hand out the artifact and its checksum list both.
    (['{"deploy_version": "1.0.0", "deploy_artifact_url": "http://repo/shop.tar.gz", '
      '"deploy_checksum_url": "http://repo/SHA256SUMS"}'],
     "Check the deploy variables: http://repo/shop.tar.gz comes over plain http and its checksum list "
     "http://repo/SHA256SUMS too: whoever sits in between could hand out both, so nothing would be verified. Serve the "
     "checksum list over https, give the digest inline (deploy_checksum), or, on a network you trust end to end, set "
     "deploy_allow_unverified=true. Nothing was changed."),
    (['{"deploy_version": "1.0.0", "deploy_keep": 0, "deploy_canary_max_error_ratio": 2, "deploy_fanout_port": 0}',
      SOURCE],
     'Check the deploy variables: deploy_keep 0 must be 1 or more. deploy_canary_max_error_ratio 2 must be from 0 to 1. '
     'deploy_fanout_port 0 must be from 1 to 65535. Nothing was changed.'),
])
def test_the_plan_names_only_the_deploy_settings_that_fail_their_checks(tmp_path, settings, says):
    args = [arg for setting in settings for arg in ("-e", setting)]
    out = refused(tmp_path, "deploy.yml", "-e", "deploy_app=shop", *args)
    assert says in out, out[-3000:]


@pytest.mark.parametrize("playbook", ["deploy.yml", "rollback.yml"])
def test_a_later_steps_setting_of_the_wrong_type_stops_the_plan_before_the_lock(tmp_path, playbook):
    # The activate step's own check would have found it only after the plan took the lock and staged the release.
    out = refused(tmp_path, playbook, "-e", "deploy_app=shop", "-e", "deploy_version=1.0.0", "-e", SOURCE,
                  "-e", "deploy_drain_timeout=soon")
    # ansible-core 2.17 and 2.18 say "of type <class 'str'>".
    assert "argument 'deploy_drain_timeout' is of type" in out and "unable to convert to float" in out, out[-3000:]
    assert "argument_spec_name: " + ("plan" if playbook == "deploy.yml" else "rollback_plan") in out, out[-3000:]


def test_rollback_checks_the_numeric_settings_before_the_lock(tmp_path):
    out = refused(tmp_path, "rollback.yml", "-e", "deploy_app=shop", "-e", '{"deploy_keep": 0, "deploy_lb_up_timeout": 0}')
    assert ("Check the deploy variables: deploy_keep 0 must be 1 or more. deploy_lb_up_timeout 0 must be above 0. "
            "Nothing was changed.") in out, out[-3000:]


def test_site_checks_the_deploy_settings_before_it_prepares_any_host(tmp_path):
    # Its deploy step's plan would refuse them only after site.yml had prepared the hosts and taken the lock.
    out = refused(tmp_path, "site.yml", "-e", "deploy_app=shop", "-e", SOURCE, "-e", '{"deploy_keep": 0}')
    assert "Check the deploy variables: deploy_keep 0 must be 1 or more. Nothing was changed." in out, out[-3000:]
    assert "Prepare" not in out, out[-3000:]


@pytest.mark.parametrize("given", [[], ["-e", "scale_in_hosts="], ["-e", '{"scale_in_hosts": []}']])
def test_scale_in_without_hosts_says_which_setting_names_them(tmp_path, given):
    out = refused(tmp_path, "scale_in.yml", "-e", "deploy_app=shop", *given)
    assert "Set scale_in_hosts to the hosts that leave (-e scale_in_hosts=app7,app8)." in out, out[-3000:]
    assert "is undefined" not in out


def test_reconfigure_checks_its_settings_before_the_lock(tmp_path):
    # Its batches would check them only under the lock, and a batch's failed check left the lock until its ttl.
    out = refused(tmp_path, "reconfigure.yml", "-e", "deploy_app=shop", "-e", '{"deploy_beside_ports": ["eighty"]}')
    assert "deploy_beside_ports" in out and "argument_spec_name: reconfigure_check" in out, out[-3000:]


@pytest.mark.parametrize("playbook", ["deploy.yml", "rollback.yml"])
def test_the_plan_names_a_load_balancer_or_lock_host_the_inventory_lacks(tmp_path, playbook):
    # Else the lock step tried to reach them and failed with ssh's "Could not resolve hostname".
    out = refused(tmp_path, playbook, "-e", "deploy_app=shop", "-e", "deploy_version=1.0.0", "-e", SOURCE,
                  "-e", '{"deploy_lb_hosts": ["l1", "lb9"], "deploy_lock_host": "l2"}')
    assert ("Check the deploy variables: deploy_lb_hosts names lb9, not in the inventory: name the load balancers as "
            'the inventory does (by default the lb group). deploy_lock_host "l2" is not in the inventory. Nothing was '
            "changed.") in out, out[-3000:]


@pytest.mark.parametrize("playbook, setting", [("deploy.yml", "deploy_serial"), ("reconfigure.yml", "deploy_serial"),
                                               ("patch.yml", "os_patch_serial"), ("rollback.yml", "deploy_serial")])
def test_batch_sizes_a_play_cannot_take_stop_the_run_before_the_lock(tmp_path, playbook, setting):
    # Ansible stops on such an entry only when the rolling play starts - after the lock was taken - with
    # "Unexpected Exception, this is probably a bug".
    out = refused(tmp_path, playbook, "-e", "deploy_app=shop", "-e", "deploy_version=1.0.0", "-e", SOURCE,
                  "-e", setting + "=1,ten")
    assert (f"{setting} \"1,ten\" holds \"ten\", which is neither a number of hosts nor a percentage such as 34%. "
            "Nothing was changed.") in out, out[-3000:]
    assert "Unexpected Exception" not in out


SLICE = ('{"awx_workflow_job_id": 4300, "awx_workflow_job_name": "Deploy", "awx_job_template_name": "Deploy"}')


@pytest.mark.parametrize("playbook", ["deploy.yml", "rollback.yml", "site.yml"])
def test_one_slice_of_a_sliced_awx_job_is_refused_on_every_host_before_the_lock(tmp_path, playbook):
    # The check runs once for the play; its failure stops every host, also in a play without any_errors_fatal (site.yml's
    # lock check, through lock.yml): no host goes on to take the lock (which would reach its host, here unreachable).
    out = refused(tmp_path, playbook, "-e", "deploy_app=shop", "-e", "deploy_version=1.0.0", "-e", SOURCE, "-e", SLICE)
    assert ('This job is one slice of the AWX job template "Deploy", which has job slicing on (workflow job 4300)'
            in out), out[-3000:]
    assert "Lock - the fleet" not in out and "Prepare" not in out, out[-3000:]
