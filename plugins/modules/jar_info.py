#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: jar_info
short_description: What a jar needs to run - the Java major version its classes need, and its main class
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Reads the class files of a jar and reports the lowest Java that can load all of them - from the highest class
    file major version (61 is Java 17, 55 is Java 11, 52 is Java 8) - and the C(Main-Class) of its manifest.
  - Classes under C(META-INF/versions/N/) of a multi-release jar are left out; only Java N and later loads them.
  - The build role (C(build_kind=jar)) records the version as what every host needs (C(requires.java)), which a
    deploy's plan checks before any change.
  - Changes nothing.
options:
  path:
    description: The jar.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
extends_documentation_fragment:
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
seealso:
  - module: seedops.deploy.package
"""

EXAMPLES = r"""
- name: What does the jar need?
  seedops.deploy.jar_info:
    path: /src/app/target/app-1.4.0.jar
  register: jar
"""

RETURN = r"""
java:
  description: The lowest Java major version that loads every class of the jar.
  returned: success
  type: int
  sample: 17
class_major:
  description: The highest class file major version among its classes.
  returned: success
  type: int
  sample: 61
classes:
  description: How many class files were read.
  returned: success
  type: int
main_class:
  description: The C(Main-Class) of the manifest; none when there is none (then C(java -jar) cannot start it).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _jar


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True)), supports_check_mode=True)
    try:
        found = _jar.inspect(module.params["path"])
    except _jar.JarError as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
