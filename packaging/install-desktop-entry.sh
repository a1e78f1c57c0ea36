#!/usr/bin/env bash
# Put Openlid in the Linux applications menu (for this user only), or take it out again.
#
#   packaging/install-desktop-entry.sh                 install, starting the best binary found
#   packaging/install-desktop-entry.sh --exec PATH     install, starting PATH
#   packaging/install-desktop-entry.sh --uninstall     remove the entry and the icons
#
# Without --exec, the binary is the first of: the built bundle (dist/openlid/openlid), the
# `openlid` on PATH, .venv/bin/openlid. Files go under ${XDG_DATA_HOME:-~/.local/share}:
# applications/openlid.desktop and icons/hicolor/<size>/apps/openlid.{png,svg}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
HICOLOR="$DATA/icons/hicolor"
SIZES=(16 32 48 64 128 256 512)
MODE=install
EXEC=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --uninstall) MODE=uninstall ;;
    --exec) shift; EXEC="${1:?--exec needs a path}" ;;
    --exec=*) EXEC="${1#--exec=}" ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-desktop-entry.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

refresh_caches() {
  # Menus and icon themes notice new files by themselves on most desktops; these only speed it up.
  if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$APPS" 2>/dev/null || true
  fi
  if command -v gtk-update-icon-cache >/dev/null 2>&1 && [[ -f "$HICOLOR/index.theme" ]]; then
    gtk-update-icon-cache -q -f -t "$HICOLOR" 2>/dev/null || true
  fi
}

if [[ $MODE == uninstall ]]; then
  rm -f "$APPS/openlid.desktop" "$HICOLOR/scalable/apps/openlid.svg"
  for size in "${SIZES[@]}"; do
    rm -f "$HICOLOR/${size}x${size}/apps/openlid.png"
  done
  refresh_caches
  echo "Openlid removed from the applications menu."
  exit 0
fi

if [[ -z "$EXEC" ]]; then
  for candidate in "$ROOT/dist/openlid/openlid" "$(command -v openlid 2>/dev/null || true)" \
                   "$ROOT/.venv/bin/openlid"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then EXEC="$candidate"; break; fi
  done
fi
if [[ -z "$EXEC" ]]; then
  echo "install-desktop-entry.sh: no openlid binary found; build one (packaging/build.sh)," \
       "install Openlid (make install), or pass --exec PATH" >&2
  exit 1
fi
if [[ ! -x "$EXEC" ]]; then
  echo "install-desktop-entry.sh: $EXEC is not an executable file" >&2
  exit 1
fi
EXEC="$(cd "$(dirname "$EXEC")" && pwd)/$(basename "$EXEC")"

# Desktop Entry quoting: the path goes in double quotes, with \ " ` $ escaped by a backslash;
# the file format then doubles every backslash once more.
quoted="$(printf '%s' "$EXEC" | sed -e 's/[\\"`$]/\\&/g' -e 's/\\/\\\\/g')"

mkdir -p "$APPS" "$HICOLOR/scalable/apps"
for size in "${SIZES[@]}"; do
  mkdir -p "$HICOLOR/${size}x${size}/apps"
  cp "$ROOT/resources/icons/openlid-$size.png" "$HICOLOR/${size}x${size}/apps/openlid.png"
done
cp "$ROOT/resources/icons/openlid.svg" "$HICOLOR/scalable/apps/openlid.svg"

tmp="$(mktemp "$APPS/.openlid.desktop.XXXXXX")"
while IFS= read -r line || [[ -n "$line" ]]; do
  case "$line" in
    Exec=*) printf 'Exec="%s"\n' "$quoted" ;;
    TryExec=*) printf 'TryExec=%s\n' "$EXEC" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$ROOT/resources/openlid.desktop" > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$APPS/openlid.desktop"  # rename: a menu never reads a half-written entry

if command -v desktop-file-validate >/dev/null 2>&1; then
  desktop-file-validate "$APPS/openlid.desktop" || true
fi
refresh_caches
echo "Openlid added to the applications menu: $APPS/openlid.desktop (starts $EXEC)"
