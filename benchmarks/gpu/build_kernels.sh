#!/usr/bin/env bash
# Build and install causal-conv1d and mamba-ssm from the sdists in .gpu/sdists, OFFLINE, for the
# local GPU's architecture only (docs/gpu.md). Run on the GPU machine, in the repository root:
#
#   bash benchmarks/gpu/build_kernels.sh                      # both packages (skips what is built)
#   bash benchmarks/gpu/build_kernels.sh --only causal-conv1d # one package (e.g. one per command)
#   bash benchmarks/gpu/build_kernels.sh --force              # rebuild even if importable
#   bash benchmarks/gpu/build_kernels.sh --patch-only DIR --arch 90   # no GPU: unpack + patch only
#
# Options: --arch XX (default: torch.cuda.get_device_capability(), e.g. 90 on H100/H200),
# --jobs N (MAX_JOBS, default nproc), --cxx-std NN (replace -std=c++17 in both setup.py files,
# e.g. 20 if the installed torch's headers need it), --sdists DIR, --wheels DIR, --build-dir DIR.
#
# Steps: check the sdists' SHA256SUMS; check torch is a CUDA build that sees a GPU; find nvcc
# ($CUDA_HOME/bin, PATH, /usr/local/cuda/bin) and require its CUDA major version to equal
# torch.version.cuda's (torch refuses to build extensions otherwise); install what the builds need
# and is missing from .gpu/wheels (never from the network); unpack each sdist into the build dir,
# patch its setup.py with benchmarks/gpu/patch_arch.py (one -gencode pair, the local arch); then
#   MAX_JOBS=$(nproc) TORCH_CUDA_ARCH_LIST=X.Y *_FORCE_BUILD=TRUE \
#   pip install --no-build-isolation --no-deps --no-index --find-links .gpu/wheels DIR
# timing each build (log: BUILD_DIR/<package>.log); finally benchmarks/gpu/check_kernels.py
# imports both packages and selective_scan_cuda, prints their versions and runs each kernel once
# against its reference. BUILD_DIR/build.json records arch, nvcc, torch and each build's seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

SDISTS=.gpu/sdists
WHEELS=.gpu/wheels
BUILD_DIR=.gpu/build
ARCH=""
JOBS=""
CXX_STD=""
FORCE=0
ONLY=""
PATCH_ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        --cxx-std) CXX_STD=$2; shift 2 ;;
        --sdists) SDISTS=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --build-dir) BUILD_DIR=$2; shift 2 ;;
        --patch-only) PATCH_ONLY=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "build_kernels: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
die() { echo "build_kernels: $*" >&2; exit 1; }

# -- the sdists ---------------------------------------------------------------------------------
[ -f "$SDISTS/SHA256SUMS" ] || die "no $SDISTS/SHA256SUMS: run benchmarks/gpu/download_sdists.sh \
on a machine with PyPI access and carry .gpu/sdists here"
(cd "$SDISTS" && sha256sum --quiet -c SHA256SUMS) || die "checksum mismatch in $SDISTS"
sdist_of() {  # package name -> the sdist file
    local f
    f=$(awk '{print $2}' "$SDISTS/SHA256SUMS" | grep "^${1//-/_}-[0-9].*\.tar\.gz$" || true)
    [ -n "$f" ] || die "no $1 sdist listed in $SDISTS/SHA256SUMS"
    echo "$SDISTS/$f"
}
version_of() { basename "$1" .tar.gz | sed -E 's/^[a-z_0-9]+-//'; }
PACKAGES=(causal-conv1d mamba-ssm)
if [ -n "$ONLY" ]; then
    case "$ONLY" in causal-conv1d|mamba-ssm) PACKAGES=("$ONLY") ;;
        *) die "--only $ONLY: expected causal-conv1d or mamba-ssm" ;; esac
fi

unpack_and_patch() {  # package dest_dir -> prints the unpacked source dir
    local sdist src
    sdist=$(sdist_of "$1")
    mkdir -p "$2"
    src="$2/$(basename "$sdist" .tar.gz)"
    rm -rf "$src"
    tar -xzf "$sdist" -C "$2"
    [ -f "$src/setup.py" ] || die "$sdist has no setup.py at $(basename "$src")/setup.py"
    "$PY" "$REPO/benchmarks/gpu/patch_arch.py" "$src/setup.py" --arch "$ARCH" \
        ${CXX_STD:+--cxx-std "$CXX_STD"} >&2 || die "patching $src/setup.py failed (above)"
    echo "$src"
}

if [ -n "$PATCH_ONLY" ]; then
    [ -n "$ARCH" ] || ARCH=$("$PY" benchmarks/gpu/patch_arch.py --detect) \
        || die "--patch-only needs --arch XX where no GPU is visible"
    for pkg in "${PACKAGES[@]}"; do
        src=$(unpack_and_patch "$pkg" "$PATCH_ONLY")
        echo "patched: $src/setup.py"
    done
    exit 0
fi

# -- torch, GPU, nvcc ---------------------------------------------------------------------------
PYBIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH="$PYBIN:$PATH"   # the venv's ninja, found by torch's cpp_extension
read -r TORCH_VERSION TORCH_CUDA CAP < <("$PY" - <<'EOF'
import torch
cuda = torch.version.cuda or "none"
cap = "none"
if torch.cuda.is_available():
    cap = "%d.%d" % torch.cuda.get_device_capability(0)
print(torch.__version__, cuda, cap)
EOF
) || die "python3 cannot import torch"
[ "$TORCH_CUDA" != none ] || die "torch $TORCH_VERSION is a CPU build; install the CUDA build of \
torch for this machine first"
[ "$CAP" != none ] || die "torch $TORCH_VERSION (CUDA $TORCH_CUDA) sees no GPU"
[ -n "$ARCH" ] || ARCH=${CAP/./}
TORCH_ARCH_LIST="${ARCH:0:${#ARCH}-1}.${ARCH: -1}"   # 90 -> 9.0 (90a -> 9.a is not used)
[[ "$ARCH" =~ ^[0-9]+$ ]] || TORCH_ARCH_LIST=""

NVCC=""
for candidate in ${CUDA_HOME:+"$CUDA_HOME/bin/nvcc"} "$(command -v nvcc || true)" \
        /usr/local/cuda/bin/nvcc; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then NVCC=$candidate; break; fi
done
[ -n "$NVCC" ] || die "nvcc not found (looked in \$CUDA_HOME/bin, PATH, /usr/local/cuda/bin): \
install the CUDA toolkit $TORCH_CUDA (major ${TORCH_CUDA%%.*}) or set CUDA_HOME"
NVCC_VERSION=$("$NVCC" --version | sed -nE 's/.*release ([0-9]+\.[0-9]+).*/\1/p')
if [ "${NVCC_VERSION%%.*}" != "${TORCH_CUDA%%.*}" ]; then
    die "nvcc $NVCC_VERSION ($NVCC) and torch's CUDA $TORCH_CUDA differ in their major version; \
torch builds extensions only with a toolkit of its own major version: install CUDA \
${TORCH_CUDA%%.*}.x's toolkit (set CUDA_HOME) or a torch build for CUDA ${NVCC_VERSION%%.*}"
fi
if "$NVCC" --list-gpu-arch >/dev/null 2>&1 \
        && ! "$NVCC" --list-gpu-arch | grep -qx "compute_$ARCH"; then
    die "nvcc $NVCC_VERSION cannot compile for compute_$ARCH (nvcc --list-gpu-arch)"
fi
export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
JOBS=${JOBS:-$(nproc)}
echo "== torch $TORCH_VERSION (CUDA $TORCH_CUDA), GPU capability $CAP, building for sm_$ARCH"
echo "== nvcc $NVCC_VERSION at $NVCC, CUDA_HOME=$CUDA_HOME, MAX_JOBS=$JOBS"

# -- what the builds need, from the carried wheels only -----------------------------------------
"$PY" -m pip install --quiet --no-index --find-links "$WHEELS" \
    einops ninja packaging setuptools wheel \
    || die "installing the build helpers from $WHEELS failed (above)"

# -- build --------------------------------------------------------------------------------------
installed_ok() {  # package version -> 0 if that version is installed and its extension imports
    "$PY" - "$1" "$2" <<'EOF' >/dev/null 2>&1
import importlib, importlib.metadata, sys
name, want = sys.argv[1], sys.argv[2]
assert importlib.metadata.version(name) == want
importlib.import_module({"mamba-ssm": "selective_scan_cuda",
                         "causal-conv1d": "causal_conv1d_cuda"}[name])
EOF
}
mkdir -p "$BUILD_DIR"
TIMES="$BUILD_DIR/times.tsv"
: > "$TIMES"
for pkg in "${PACKAGES[@]}"; do
    version=$(version_of "$(sdist_of "$pkg")")
    if [ "$FORCE" = 0 ] && installed_ok "$pkg" "$version"; then
        echo "== $pkg $version: already installed and importable (--force rebuilds)"
        printf '%s\t%s\t%s\t%s\n' "$pkg" "$version" skipped 0 >> "$TIMES"
        continue
    fi
    src=$(unpack_and_patch "$pkg" "$BUILD_DIR")
    log="$BUILD_DIR/$pkg.log"
    echo "== building $pkg $version for sm_$ARCH (log: $log)"
    start=$(date +%s.%N)
    set +e
    env MAX_JOBS="$JOBS" TORCH_CUDA_ARCH_LIST="$TORCH_ARCH_LIST" \
        MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=FALSE \
        CAUSAL_CONV1D_FORCE_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=FALSE \
        "$PY" -m pip install -v --no-build-isolation --no-deps --no-index \
        --find-links "$WHEELS" "$src" > "$log" 2>&1
    status=$?
    set -e
    seconds=$("$PY" -c "import time; print(round(time.time() - $start, 1))")
    if [ "$status" != 0 ]; then
        grep -n -E "error|Error" "$log" | grep -v -E "Werror|-Wno-error|error\.h" | head -40 >&2 || true
        tail -n 40 "$log" >&2
        printf '%s\t%s\t%s\t%s\n' "$pkg" "$version" failed "$seconds" >> "$TIMES"
        die "building $pkg failed after ${seconds}s (log: $log; first errors and its end above)"
    fi
    echo "== $pkg $version built and installed in ${seconds}s"
    printf '%s\t%s\t%s\t%s\n' "$pkg" "$version" built "$seconds" >> "$TIMES"
done

# -- verify -------------------------------------------------------------------------------------
set +e
CHECK_ONLY=()
[ "$ONLY" = causal-conv1d ] && CHECK_ONLY=(--only causal-conv1d)
"$PY" benchmarks/gpu/check_kernels.py --relax-init "${CHECK_ONLY[@]}" --out "$BUILD_DIR/check.json"
check=$?
set -e
"$PY" - "$BUILD_DIR" "$ARCH" "$NVCC_VERSION" "$JOBS" "$check" <<'EOF'
import json, platform, sys
from pathlib import Path
build, arch, nvcc, jobs, check = sys.argv[1:6]
import torch
rows = [line.split("\t") for line in Path(build, "times.tsv").read_text().splitlines() if line]
previous = {}
if Path(build, "build.json").exists():
    previous = json.loads(Path(build, "build.json").read_text()).get("packages", {})
packages = dict(previous)
for name, version, what, seconds in rows:
    if what != "skipped" or name not in packages:
        packages[name] = {"version": version, "status": what, "seconds": float(seconds)}
record = {
    "arch": f"sm_{arch}", "nvcc": nvcc, "max_jobs": int(jobs), "torch": torch.__version__,
    "torch_cuda": torch.version.cuda, "python": platform.python_version(),
    "device": torch.cuda.get_device_name(0), "packages": packages,
    "check_exit_status": int(check),
}
Path(build, "build.json").write_text(json.dumps(record, indent=2) + "\n")
print(json.dumps(record))
EOF
[ "$check" = 0 ] || die "the kernels were built but check_kernels.py failed (above)"
echo "== done: $BUILD_DIR/build.json"
