"""The material for AWX/Automation Controller job templates (awx/): surveys whose every question sets a variable the
deploy role declares, with the role's own default and choices, and an example project that runs the collection's
playbooks."""
import json
import os

import pytest
import yaml

from ansible_collections.seedops.deploy.plugins.filter import deploy as deploy_filters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SURVEYS = os.path.join(ROOT, "awx", "surveys")
PROJECT = os.path.join(ROOT, "awx", "project")
# What AWX accepts as a survey question's type.
TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def load_yaml(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def declared():
    """Every option of every entry point of the deploy role's argument spec: name -> its spec."""
    options = {}
    for entry in load_yaml("roles", "deploy", "meta", "argument_specs.yml")["argument_specs"].values():
        options.update(entry.get("options") or {})
    return options


def surveys():
    return sorted(name for name in os.listdir(SURVEYS) if name.endswith(".json"))


def test_there_is_a_survey_for_each_job_template_the_issue_names():
    assert surveys() == ["deploy.json", "reconfigure.json", "rollback.json"]


@pytest.mark.parametrize("name", ["deploy.json", "reconfigure.json", "rollback.json"])
def test_each_question_sets_a_declared_variable_with_the_role_default_and_choices(name):
    with open(os.path.join(SURVEYS, name), encoding="utf-8") as handle:
        survey = json.load(handle)
    assert survey["name"] and survey["description"] and survey["spec"]
    options, defaults = declared(), load_yaml("roles", "deploy", "defaults", "main.yml")
    seen = set()
    for question in survey["spec"]:
        variable = question["variable"]
        assert variable not in seen, f"{name}: {variable} is asked twice"
        seen.add(variable)
        assert question["question_name"] and question["type"] in TYPES, question
        assert variable in options, f"{name}: {variable} is not an option of the deploy role's argument spec"
        spec, default, choices = options[variable], question["default"], question["choices"]
        if question["type"] == "multiplechoice":
            assert choices.split("\n") == spec["choices"], f"{name}: {variable}'s choices differ from the role's"
            assert default in spec["choices"]
        if question["type"] in ("integer", "float"):
            assert question["min"] <= default <= question["max"], question
            assert spec["type"] in ("int", "float"), f"{name}: {variable} is a {spec['type']} in the role"
        if variable == "deploy_serial":
            assert deploy_filters.serial_entries(default) == [str(e) for e in defaults[variable]]
        elif variable in defaults:
            assert default == defaults[variable], f"{name}: {variable}'s default {default!r} is not the role's"


def test_the_deploy_survey_asks_for_the_version():
    with open(os.path.join(SURVEYS, "deploy.json"), encoding="utf-8") as handle:
        (version,) = [q for q in json.load(handle)["spec"] if q["variable"] == "deploy_version"]
    assert version["required"] and version["type"] == "text" and version["min"] >= 1


def test_the_example_project_runs_the_collections_playbooks_with_the_report():
    for name in ("deploy", "rollback", "reconfigure"):
        (play,) = load_yaml("awx", "project", f"{name}.yml")
        assert play["ansible.builtin.import_playbook"] == f"seedops.deploy.{name}"
        assert os.path.exists(os.path.join(ROOT, "playbooks", f"{name}.yml"))
    (requirement,) = load_yaml("awx", "project", "collections", "requirements.yml")["collections"]
    assert requirement == {"name": "seedops.deploy", "version": load_yaml("galaxy.yml")["version"]}
    with open(os.path.join(PROJECT, "ansible.cfg"), encoding="utf-8") as handle:
        assert "callbacks_enabled = seedops.deploy.deploy_report" in handle.read()


@pytest.mark.parametrize("name", ["deploy.yml", "rollback.yml"])
def test_a_slice_is_refused_before_the_role_reads_any_setting(name):
    """The role's argument check templates every setting it declares, and a slice may lack a host they name (the
    repository host of an artifact URL), which would fail with a templating error instead of the refusal."""
    first = load_yaml("playbooks", name)[0]["tasks"][0]
    assert first["ansible.builtin.include_role"] == {"name": "seedops.deploy.deploy", "tasks_from": "refuse_slice"}
    assert first["run_once"] is True
    with open(os.path.join(ROOT, "roles", "deploy", "tasks", "lock.yml"), encoding="utf-8") as handle:
        assert handle.read().count("ansible.builtin.import_tasks: refuse_slice.yml") == 1


def requirement_pins():
    """requirements.txt's exact pins: name -> version."""
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as handle:
        return dict(line.strip().split("==") for line in handle if "==" in line and not line.startswith("#"))


def test_the_execution_environment_is_valid_for_ansible_builder_and_installs_what_the_tests_run():
    from ansible_builder.user_definition import UserDefinition  # pylint: disable=import-outside-toplevel

    path = os.path.join(ROOT, "awx", "ee", "execution-environment.yml")
    definition = UserDefinition(path)
    definition.validate()
    pins = requirement_pins()
    assert definition.version == 3
    assert definition.ansible_core_ref == f"ansible-core=={pins['ansible-core']}"
    assert definition.ansible_runner_ref == f"ansible-runner=={pins['ansible-runner']}"
    # The collection's tarball, named as `ansible-galaxy collection build` names this version.
    galaxy = load_yaml("galaxy.yml")
    tarball = f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    assert [f["src"] for f in definition.raw["additional_build_files"]] == [tarball]
    assert definition.raw["dependencies"]["galaxy"]["collections"] == [
        {"name": f"collections/{tarball}", "type": "file"}]
    assert definition.raw["options"]["tags"] == [f"seedops/deploy-ee:{galaxy['version']}"]


def test_the_collection_declares_its_python_packages_for_execution_environments():
    meta = load_yaml("meta", "execution-environment.yml")
    with open(os.path.join(ROOT, meta["dependencies"]["python"]), encoding="utf-8") as handle:
        packages = [line.split(">=")[0].strip() for line in handle if line.strip() and not line.startswith("#")]
    assert packages == ["passlib"]
    assert "passlib" in requirement_pins(), "the tests run with what an execution environment gets"
