"""The X-library check made before Qt opens a window: which libraries are missing, when the check
applies at all, and the words a person gets (packages to install)."""

from __future__ import annotations

from desktop.ui.platform_check import (
    XCB_LIBRARIES,
    missing_message,
    missing_xcb_libraries,
    uses_xcb,
)


def test_a_library_the_loader_cannot_open_is_reported_by_soname() -> None:
    def load(name: str) -> object:
        if name in ("libxcb-icccm.so.4", "libxcb-keysyms.so.1"):
            raise OSError(f"{name}: cannot open shared object file")
        return object()

    assert missing_xcb_libraries(load) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert missing_xcb_libraries(lambda name: object()) == []


def test_the_message_names_the_packages_to_install() -> None:
    text = missing_message(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1" in text
    assert "libxcb-icccm.so.4" in text
    assert "dnf install" in text


def test_every_library_has_a_package() -> None:
    assert all(name.endswith(tuple(".so." + n for n in "0146")) for name in XCB_LIBRARIES)
    assert all(XCB_LIBRARIES.values())


def test_the_check_applies_only_where_qt_would_use_xcb() -> None:
    assert uses_xcb("linux", {"DISPLAY": ":0"})
    assert not uses_xcb("linux", {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"})
    assert not uses_xcb("linux", {})
    assert not uses_xcb("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"})
    assert uses_xcb("linux", {"QT_QPA_PLATFORM": "xcb"})
    assert not uses_xcb("darwin", {"DISPLAY": ":0"})
    assert not uses_xcb("win32", {"QT_QPA_PLATFORM": "xcb"})
