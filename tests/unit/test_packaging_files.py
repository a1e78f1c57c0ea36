"""The packaging inputs are well formed: desktop entry, icons, PyInstaller spec and hook, scripts.

No Qt and no PyInstaller needed: these read the files as data (building the bundle is
`packaging/build.sh --check`, outside the test suite).
"""

from __future__ import annotations

import configparser
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
ICONS = ROOT / "resources" / "icons"
PACKAGING = ROOT / "packaging"
SIZES = (16, 32, 48, 64, 128, 256, 512)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    assert length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert data[-12:-4] == b"\0\0\0\0IEND", "PNG is truncated"
    return width, height


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read(ROOT / "resources" / "openlid.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_entry_parses_and_names_an_existing_icon() -> None:
    entry = desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Openlid"
    assert entry["Exec"].split()[0] == "openlid"
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")
    icon = entry["Icon"]
    assert "/" not in icon, "a theme icon name, installed by install-desktop-entry.sh"
    assert (ICONS / f"{icon}.svg").is_file()
    assert all((ICONS / f"{icon}-{size}.png").is_file() for size in SIZES)


@pytest.mark.parametrize("size", SIZES)
def test_png_icon_has_its_size(size: int) -> None:
    assert png_size((ICONS / f"openlid-{size}.png").read_bytes()) == (size, size)


def test_svg_icon_is_square_svg() -> None:
    root = ET.parse(ICONS / "openlid.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 512 512"


def test_ico_and_icns_hold_pngs() -> None:
    ico = (ICONS / "openlid.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1)
    assert count >= 4
    for i in range(count):
        w, _, _, _, _, _, size, offset = struct.unpack("<BBBBHHII", ico[6 + 16 * i: 22 + 16 * i])
        width, _ = png_size(ico[offset: offset + size])
        assert width == (w or 256)

    icns = (ICONS / "openlid.icns").read_bytes()
    assert icns[:4] == b"icns"
    assert struct.unpack(">I", icns[4:8])[0] == len(icns)
    offset, kinds = 8, []
    while offset < len(icns):
        kind, length = struct.unpack(">4sI", icns[offset: offset + 8])
        png_size(icns[offset + 8: offset + length])
        kinds.append(kind)
        offset += length
    assert b"ic10" in kinds
    assert b"icp4" in kinds


@pytest.mark.parametrize(
    "path",
    ["openlid.spec", "hooks/hook-llama_cpp.py", "openlid_entry.py", "render_icons.py"],
)
def test_python_files_compile(path: str) -> None:
    source = (PACKAGING / path).read_text(encoding="utf-8")
    compile(source, str(PACKAGING / path), "exec")


def test_spec_bundles_what_the_app_needs() -> None:
    spec = (PACKAGING / "openlid.spec").read_text(encoding="utf-8")
    assert '"resources")]' in spec  # desktop.core.resources looks in sys._MEIPASS/resources
    assert "openlid_entry.py" in spec
    assert "hookspath" in spec
    assert "console=CONSOLE" in spec
    assert "exclude_binaries=True" in spec
    assert "BUNDLE(" in spec
    assert "info_plist" in spec
    hook = (PACKAGING / "hooks" / "hook-llama_cpp.py").read_text(encoding="utf-8")
    assert '"llama_cpp/lib"' in hook
    entry = (PACKAGING / "openlid_entry.py").read_text(encoding="utf-8")
    assert entry.index("freeze_support()") < entry.index("from desktop.__main__ import main")


@pytest.mark.parametrize("script", ["build.sh", "install-desktop-entry.sh"])
def test_shell_scripts_are_executable_and_parse(script: str) -> None:
    path = PACKAGING / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    subprocess.run([bash, "-n", str(path)], check=True, timeout=30)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_install_desktop_entry_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "share"
    binary = tmp_path / "my apps" / "openlid"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(data)}
    script = str(PACKAGING / "install-desktop-entry.sh")
    subprocess.run(["bash", script, "--exec", str(binary)], env=env, check=True, timeout=60,
                   capture_output=True)
    entry = (data / "applications" / "openlid.desktop").read_text(encoding="utf-8")
    assert f'Exec="{binary}"' in entry
    assert f"TryExec={binary}" in entry
    for size in SIZES:
        installed = data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "openlid.png"
        assert png_size(installed.read_bytes()) == (size, size)
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "openlid.svg").is_file()

    subprocess.run(["bash", script, "--uninstall"], env=env, check=True, timeout=60,
                   capture_output=True)
    assert not [p for p in data.rglob("*") if p.is_file()]


def test_pyproject_lists_every_package_of_the_layout() -> None:
    """setuptools installs only the packages pyproject names: a new sub-package left out would be
    missing from a wheel (and from a non-editable install) though every test here passes."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"]) - {"openlid_resources"}
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "desktop").rglob("__init__.py")
    }
    assert listed == found


def test_the_lock_matches_pyproject_and_pins_llama_cpp_python() -> None:
    """uv.lock is committed and pins what CI tests (`uv sync --locked` refuses a stale lock)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    versions = {p["name"]: p["version"] for p in lock["package"] if "version" in p}
    for name in ("llama-cpp-python", "pyside6-essentials", "transformers", "torch", "mypy"):
        assert name in versions, name
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "sync $(SYNC_ARGS)" in makefile
    assert "--locked" in makefile
