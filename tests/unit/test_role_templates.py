"""Rules for the Jinja in the collection's roles and playbooks that no linter checks."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ansible-core's set filters build a Python set, so their result comes out in an order that changes from one run to
# the next (string hashing is randomized per process). A host list made with one of them reorders the servers of a
# rendered haproxy.cfg, which then differs from the file and costs a reload: keep the order with
# `A | reject('in', B) | list` (or `select('in', B)` for an intersection, `(A + B) | unique` for a union).
SET_FILTER = re.compile(r"\|\s*(difference|intersect|union|symmetric_difference)\s*\(")


def content_files():
    for top in ("roles", "playbooks"):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".yml", ".yaml", ".j2")):
                    yield os.path.join(folder, name)


def test_no_set_filter_that_loses_the_order():
    paths = sorted(content_files())
    assert len(paths) > 50, paths
    found = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            found += ["%s:%d: %s" % (os.path.relpath(path, ROOT), number, line.strip())
                      for number, line in enumerate(handle, 1) if SET_FILTER.search(line)]
    assert not found, "a set filter loses the order of its list (use reject('in', ...) | list):\n" + "\n".join(found)
