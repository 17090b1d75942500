# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing for systemd: environment files (EnvironmentFile=) and command lines (ExecStart= and the other Exec lines),
so that systemd reads back exactly the values and arguments it was given.

EnvironmentFile= (systemd.exec(5)): a double-quoted value keeps every character as it is except the four that a
backslash escapes - \\" \\\\ \\` \\$ - so those four get a backslash and everything else, UTF-8 included, is written as
it is. Nothing like \\uXXXX or \\n is interpreted there. The same text is a valid double-quoted POSIX shell word, so
files under /etc/default that scripts source read the same.

Command lines (systemd.service(5), "COMMAND LINES"): each argument in double quotes, where systemd undoes C escapes
(\\\\, \\", \\n, \\xNN), expands specifiers (% becomes %%) and, at start, environment variables ($ becomes $$).
"""

from __future__ import annotations

import json
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# What systemd refuses in a unit or environment file (the whole file then fails to load): NUL, the byte order mark
# U+FEFF, and Unicode noncharacters (U+FDD0..U+FDEF and the last two code points of every plane). Lone surrogates are
# not UTF-8 at all.
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    chr(plane * 0x10000 + 0xfffe) + chr(plane * 0x10000 + 0xffff) for plane in range(17))
_UNWRITABLE = re.compile("[\x00\ufeff\ud800-\udfff%s]" % _NONCHARACTERS)
_ENV_ESCAPE = re.compile(r'(["\\`$])')
_PREFIXES = "-@:+!|"


def _as_text(value):
    """A value as the collection has always written it: text as it is, anything else as Ansible's string filter
    shows it (8080 -> '8080')."""
    return value if isinstance(value, str) else to_text(value)


def _unwritable(text):
    """Why systemd cannot carry `text`, or None."""
    found = _UNWRITABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "holds a NUL character, which no environment variable or argument can"
    if "\ud800" <= char <= "\udfff":
        return "is not valid UTF-8 (a lone surrogate U+%04X)" % ord(char)
    if char == "\ufeff":
        return "holds a byte order mark (U+FEFF), which systemd does not allow in its files"
    return "holds the Unicode noncharacter U+%04X, which makes systemd refuse the whole file" % ord(char)


def env_problems(env, name="environment"):
    """What an EnvironmentFile= cannot hold in `env` (a dict), one message per key, naming `name` and the key but
    never a value (values may be secrets). [] when all is well."""
    if not isinstance(env, dict):
        return ["%s must be a dict of variable names and values, got %s" % (name, type(env).__name__)]
    problems = []
    for key in sorted(env, key=to_text):
        value = env[key]
        if not isinstance(key, str) or not KEY.match(key):
            problems.append("%s: %s is not a variable name - use letters, digits and _, not starting with a digit "
                            "(systemd ignores other names)" % (name, json.dumps(to_text(key))))
            continue
        if value is None:
            problems.append("%s: %s has no value (null); give a string, or \"\" for an empty one" % (name, key))
            continue
        text = _as_text(value)
        if "\n" in text or "\r" in text:
            problems.append("%s: the value of %s holds a line break; systemd could read it in quotes, but programs "
                            "that read environment files line by line cannot - put such text (a certificate, a key) "
                            "in a file of its own and pass its path" % (name, key))
            continue
        why = _unwritable(text)
        if why:
            problems.append("%s: the value of %s %s" % (name, key, why))
    return problems


def env_value(value):
    """One value as systemd's EnvironmentFile= (and a POSIX shell) reads it back exactly: in double quotes, with
    \\ before " \\ ` and $."""
    return '"%s"' % _ENV_ESCAPE.sub(r"\\\1", _as_text(value))


def systemd_env_file(env, name="environment"):
    """The lines (KEY="value", sorted by key) of an EnvironmentFile= holding `env`. Fails naming every key that
    cannot be written (never a value) - check with systemd_env_problems first to fail before anything changes."""
    problems = env_problems(env, name)
    if problems:
        raise AnsibleFilterError("systemd_env_file: %s" % "; ".join(problems))
    return ["%s=%s" % (key, env_value(env[key])) for key in sorted(env)]


def systemd_env_problems(env, name="environment"):
    """See env_problems."""
    return env_problems(env, name)


def _quote_arg(arg):
    out = []
    for char in arg:
        if char in '\\"':
            out.append("\\" + char)
        elif char == "$":
            out.append("$$")
        elif char == "%":
            out.append("%%")
        elif char == "\n":
            out.append("\\n")
        elif char < " " or char == "\x7f":
            out.append("\\x%02x" % ord(char))
        else:
            out.append(char)
    return '"%s"' % "".join(out)


def systemd_command(argv, name="command"):
    """A command line for ExecStart= (and the other Exec lines) that starts exactly `argv`: every argument in double
    quotes, \\ and " escaped, $ as $$ and % as %% (so nothing expands), control characters as C escapes. The program
    (argv[0]) may not begin with one of systemd's prefix characters - @ - : + ! | - which quotes do not hide."""
    if isinstance(argv, str) or not isinstance(argv, (list, tuple)) or not argv:
        raise AnsibleFilterError("systemd_command: %s must be a non-empty list (the program, then its arguments), "
                                 "got %s" % (name, json.dumps(to_text(argv))))
    args = [_as_text(arg) for arg in argv]
    if not args[0] or args[0][0] in _PREFIXES:
        raise AnsibleFilterError("systemd_command: the program of %s is %s; it must be a path, not empty and not "
                                 "starting with one of %s, which systemd reads as prefixes even in quotes"
                                 % (name, json.dumps(args[0]), _PREFIXES))
    for index, arg in enumerate(args):
        why = _unwritable(arg)
        if why:
            raise AnsibleFilterError("systemd_command: %s, argument %d %s" % (name, index, why))
    return " ".join(_quote_arg(arg) for arg in args)


class FilterModule:
    """seedops.deploy filters for systemd files."""

    def filters(self):
        return {
            "systemd_env_file": systemd_env_file,
            "systemd_env_problems": systemd_env_problems,
            "systemd_command": systemd_command,
        }
