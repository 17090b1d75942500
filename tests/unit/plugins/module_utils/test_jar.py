"""What a jar needs (module_utils/_jar.py) and the jar_info module: jars written here, and one built by javac."""

import os
import shutil
import struct
import subprocess
import zipfile

import pytest

import fakes

from ansible_collections.seedops.deploy.plugins.module_utils import _jar
from ansible_collections.seedops.deploy.plugins.modules import jar_info


def klass(major):
    return struct.pack(">IHH", 0xCAFEBABE, 0, major) + b"rest of the class"


def jar(path, classes, manifest="Manifest-Version: 1.0\r\nMain-Class: org.example.App\r\n\r\n"):
    with zipfile.ZipFile(path, "w") as z:
        if manifest is not None:
            z.writestr("META-INF/MANIFEST.MF", manifest)
        for name, body in classes.items():
            z.writestr(name, body)
    return str(path)


@pytest.mark.parametrize("major, java", [(61, 17), (55, 11), (52, 8), (49, 5), (45, 1), (65, 21)])
def test_the_class_file_major_version_names_the_java(major, java):
    assert _jar.java_for_major(major) == java


def test_the_highest_class_decides_and_multi_release_classes_do_not(tmp_path):
    path = jar(tmp_path / "app.jar", {"org/example/App.class": klass(55), "org/example/Util.class": klass(52),
                                      "META-INF/versions/21/org/example/Util.class": klass(65),
                                      "config.properties": b"a=1"})
    assert _jar.inspect(path) == {"java": 11, "class_major": 55, "classes": 2, "main_class": "org.example.App"}


def test_a_long_main_class_on_a_continuation_line_and_no_manifest(tmp_path):
    text = "Manifest-Version: 1.0\nMain-Class: org.example.verylongpackagename\n .App\nCreated-By: me\n\nName: x\nMain-Class: no\n"
    assert _jar.manifest_attributes(text)["Main-Class"] == "org.example.verylongpackagename.App"
    path = jar(tmp_path / "lib.jar", {"A.class": klass(61)}, manifest=None)
    assert _jar.inspect(path)["main_class"] is None


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"not a zip"), "is not a readable jar"),
    (lambda p: jar(p, {"README": b"x"}), "holds no class files"),
    (lambda p: jar(p, {"A.class": b"\x00\x01\x02\x03\x00\x00\x00\x3d"}), "A.class in .* is not a class file"),
])
def test_what_is_not_a_jar_is_named(tmp_path, make, message):
    path = tmp_path / "x.jar"
    make(path)
    with pytest.raises(_jar.JarError, match=message):
        _jar.inspect(str(path))


@pytest.mark.skipif(not shutil.which("javac") or not shutil.which("jar"), reason="needs a JDK (javac, jar)")
def test_a_jar_built_by_javac_for_java_11(tmp_path, capsys):
    src = tmp_path / "org" / "example"
    src.mkdir(parents=True)
    (src / "App.java").write_text("package org.example; public class App { public static void main(String[] a) {} }\n")
    subprocess.run(["javac", "--release", "11", "-d", str(tmp_path / "out"), str(src / "App.java")], check=True)
    subprocess.run(["jar", "--create", "--file", str(tmp_path / "app.jar"), "--main-class", "org.example.App",
                    "-C", str(tmp_path / "out"), "."], check=True)
    rc, result = fakes.run_main(jar_info.main, capsys, {"path": str(tmp_path / "app.jar")})
    assert rc == 0 and not result["changed"]
    assert (result["java"], result["class_major"], result["main_class"]) == (11, 55, "org.example.App")
    rc, result = fakes.run_main(jar_info.main, capsys, {"path": os.path.join(str(tmp_path), "missing.jar")})
    assert rc == 1 and "is not a readable jar" in result["msg"]
