"""Before Qt opens a window on Linux/X11: are the X libraries Qt's xcb plugin links against here?

Without one of them Qt prints "Could not load the Qt platform plugin "xcb"" and aborts the process
(SIGABRT, before Python can catch anything), which a person who double-clicked sees as nothing at
all. `missing_xcb_libraries()` tries each library the way the dynamic linker would; `run_app` says
which Debian/Ubuntu and Fedora packages to install and exits instead. Main thread, before the
QApplication exists; imports no Qt.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

# The libraries PySide6's libqxcb.so and libQt6XcbQpa.so need beyond libxcb/libX11 themselves
# (read with ldd from PySide6-Essentials 6.11), with the Debian/Ubuntu package of each.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11-xcb.so.1": "libx11-xcb1",
}
FEDORA_HINT = "xcb-util-cursor xcb-util-wm xcb-util-image xcb-util-keysyms xcb-util-renderutil"


def uses_xcb(platform: str, environ: Mapping[str, str]) -> bool:
    """Whether Qt will pick its xcb plugin: Linux, and X11 chosen or the only display there."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def missing_xcb_libraries(load: Callable[[str], object] = ctypes.CDLL) -> list[str]:
    """The libraries of XCB_LIBRARIES that cannot be loaded here (sonames)."""
    missing = []
    for soname in XCB_LIBRARIES:
        try:
            load(soname)
        except OSError:
            missing.append(soname)
    return missing


def missing_message(missing: list[str]) -> str:
    """What to tell a person whose machine lacks some of Qt's X libraries."""
    packages = " ".join(XCB_LIBRARIES[name] for name in missing)
    return (
        "Openlid cannot open its window: Qt's X11 platform plugin (xcb) needs "
        f"{', '.join(missing)}, which this system does not have.\n"
        f"On Debian or Ubuntu: sudo apt install {packages}\n"
        f"On Fedora: sudo dnf install {FEDORA_HINT}\n"
        "Or start Openlid under Wayland, or without a window: openlid --help lists the "
        "command-line verbs."
    )


def check_platform() -> str | None:
    """A message when Qt's window system cannot start here, else None."""
    if not uses_xcb(sys.platform, os.environ):
        return None
    missing = missing_xcb_libraries()
    return missing_message(missing) if missing else None
