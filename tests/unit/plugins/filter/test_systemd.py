"""Unit tests for the systemd filters: environment files and command lines that systemd reads back exactly.

The readers below follow systemd's documented rules (systemd.exec(5) for EnvironmentFile=, systemd.service(5)
"COMMAND LINES" for Exec lines); the lab tests (test_env_config.py, test_service.py) check the same on real systemd."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter import systemd as plugin

TRICKY = [
    "plain", "", "café ☕ 😀", "lit\\u00e9 and \\n stay as typed", 'say "hi"', "back\\slash\\", "\\", "$HOME ${X} $$",
    "`id`", "tab\there", "esc\x1b[0m", "  spaces around  ", "# not a comment ; nor this", "it's", "100%", "a=b=c",
]


def read_env_value(text):
    """A double-quoted EnvironmentFile= value as systemd reads it: \\ before one of " \\ ` $ keeps that character,
    before a newline is a continuation, before anything else stays with it."""
    assert text[0] == '"' and text[-1] == '"'
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        char = body[i]
        if char == '"':
            raise AssertionError("unescaped quote inside the value: %r" % text)
        if char == "\\":
            nxt = body[i + 1]
            if nxt in '"\\`$':
                out.append(nxt)
            elif nxt != "\n":
                out.append(char + nxt)
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def read_command(line):
    """The argv systemd starts for a command line of double-quoted words: C escapes undone, then specifiers (%%)
    and variables ($$)."""
    words = re.findall(r'"((?:[^"\\]|\\.)*)"', line)
    assert " ".join('"%s"' % w for w in words) == line, "only double-quoted words, one space apart"

    def unescape(word):
        word = re.sub(r"\\x([0-9a-f]{2})|\\n|\\(.)", lambda m: chr(int(m.group(1), 16)) if m.group(1)
                      else "\n" if m.group(0) == "\\n" else m.group(2), word)
        return word

    args = []
    for word in words:
        word = unescape(word)
        assert re.sub(r"%%|\$\$", "", word).count("%") == 0 and "$" not in re.sub(r"%%|\$\$", "", word)
        args.append(word.replace("%%", "%").replace("$$", "$"))
    return args


@pytest.mark.parametrize("value", TRICKY)
def test_env_values_read_back_exactly(value):
    line = plugin.systemd_env_file({"KEY": value})[0]
    assert line.startswith("KEY=")
    assert read_env_value(line[4:]) == value


def test_env_file_is_sorted_and_writes_utf8_and_escapes_literally():
    lines = plugin.systemd_env_file({"PORT": 8080, "GREETING": 'say "hi" to $USER', "NAME": "café",
                                     "RAW": "a\\nb \\u00e9", "CMD": "`id`", "ON": True})
    assert lines == ['CMD="\\`id\\`"', 'GREETING="say \\"hi\\" to \\$USER"', 'NAME="café"', 'ON="True"',
                     'PORT="8080"', 'RAW="a\\\\nb \\\\u00e9"']
    assert "\\u00e9" not in lines[2], "raw UTF-8, never a JSON escape"


@pytest.mark.parametrize("key", ["1ABC", "MY-VAR", "with space", "", "A.B", "ÄRGER", "X\n"])
def test_bad_keys_are_named_with_what_to_do(key):
    problems = plugin.systemd_env_problems({key: "v", "GOOD": "x"}, "app_env")
    assert len(problems) == 1
    assert problems[0].startswith("app_env: ") and "is not a variable name - use letters, digits and _" in problems[0]
    with pytest.raises(AnsibleFilterError, match="is not a variable name"):
        plugin.systemd_env_file({key: "v"}, "app_env")


def test_keys_that_are_not_strings():
    assert "is not a variable name" in plugin.systemd_env_problems({1: "x"})[0]


@pytest.mark.parametrize("value,message", [
    ("line1\nline2", "holds a line break"),
    ("cr\rhere", "holds a line break"),
    ("nul\x00", "holds a NUL character"),
    ("bom\ufeff", "byte order mark"),
    ("non\ufffe", "noncharacter U+FFFE"),
    ("non\U0010ffff", "noncharacter U+10FFFF"),
    ("non\ufdd0", "noncharacter U+FDD0"),
    ("half\udc80", "lone surrogate"),
    (None, "has no value (null)"),
])
def test_values_systemd_cannot_carry_are_refused_without_showing_them(value, message):
    problems = plugin.systemd_env_problems({"SECRET": value}, "app_service_secret_env")
    assert len(problems) == 1 and message in problems[0], problems
    assert problems[0].startswith("app_service_secret_env: ") and "SECRET" in problems[0]
    if value:
        assert value not in problems[0], "a value never appears in a message"
    with pytest.raises(AnsibleFilterError, match="systemd_env_file: app_service_secret_env: "):
        plugin.systemd_env_file({"SECRET": value}, "app_service_secret_env")


def test_every_problem_at_once_and_none_for_good_input():
    assert plugin.systemd_env_problems({"A": "ok", "C D": "1", "B": "x\ny"}, "v") == [
        plugin.systemd_env_problems({"B": "x\ny"}, "v")[0],
        'v: "C D" is not a variable name - use letters, digits and _, not starting with a digit (systemd ignores other '
        "names)"]
    assert plugin.systemd_env_problems(dict(zip("ABCDEFGHIJKLMNOP", TRICKY))) == []
    assert plugin.systemd_env_problems({}) == [] and plugin.systemd_env_file({}) == []
    assert plugin.systemd_env_problems(["A=1"], "v") == ["v must be a dict of variable names and values, got list"]


@pytest.mark.parametrize("arg", TRICKY + ["nl\nx", "cr\rx", "del\x7f", ";", "\\;", "-x", "@y", "%n %%"])
def test_command_arguments_arrive_exactly(arg):
    line = plugin.systemd_command(["/usr/bin/app", arg])
    assert read_command(line) == ["/usr/bin/app", arg]


def test_command_line_form():
    assert plugin.systemd_command(["/srv/app/current/bin/app", "--listen", ":8080", "--name", "a b",
                                   "--home", "$HOME", "--unit", "%n"]) == (
        '"/srv/app/current/bin/app" "--listen" ":8080" "--name" "a b" "--home" "$$HOME" "--unit" "%%n"')
    assert plugin.systemd_command(["/bin/kill", "-s", "HUP"]) == '"/bin/kill" "-s" "HUP"'
    assert plugin.systemd_command(["/usr/bin/printf", 'q"\\\t\n']) == '"/usr/bin/printf" "q\\"\\\\\\x09\\n"'


@pytest.mark.parametrize("argv,message", [
    ([], "must be a non-empty list"),
    ("/bin/true", "must be a non-empty list"),
    (["-/bin/true"], "the program of app is \"-/bin/true\"; it must be a path"),
    (["@/bin/true", "x"], "must be a path"),
    ([""], "must be a path"),
    (["/bin/echo", "ok", "nul\x00"], "app, argument 2 holds a NUL character"),
    (["/bin/echo", "\ufdef"], "argument 1 holds the Unicode noncharacter U+FDEF"),
])
def test_commands_systemd_cannot_start_as_given_are_refused(argv, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        plugin.systemd_command(argv, "app")


def test_filters_are_registered():
    assert set(plugin.FilterModule().filters()) == {"systemd_env_file", "systemd_env_problems", "systemd_command"}
