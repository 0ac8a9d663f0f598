#!/usr/bin/env bash
# Download, on a machine WITH access to PyPI, everything an offline GPU machine needs to build and
# use the fused Mamba kernels with seqbench (docs/gpu.md):
#
#   .gpu/sdists/  the source distributions of mamba-ssm and causal-conv1d (nothing compiled here)
#                 and SHA256SUMS, which build_kernels.sh checks before unpacking them;
#   .gpu/wheels/  wheels of the pure-Python (and two small binary) packages that the build and
#                 seqbench need and a bare GPU image may lack, for the GPU machine's Python.
#
#   bash benchmarks/gpu/download_sdists.sh [--dest .gpu] [--python-version 3.12]
#
# Needs pip and, because pip runs each sdist's setup.py to read its metadata, an importable torch
# (any build: the CPU one does; MAMBA_SKIP_CUDA_BUILD / CAUSAL_CONV1D_SKIP_CUDA_BUILD keep
# setup.py from looking for nvcc) and setuptools, wheel, packaging and ninja (--no-build-isolation).
#
# What each sdist declares (read from the 2.3.2.post1 / 1.7.0 sdists):
#   mamba-ssm  build: setuptools>=61, wheel, packaging, ninja (+ torch, deliberately not declared)
#              run:   torch, triton>=3.5, einops, transformers, packaging, setuptools, ninja,
#                     tilelang==0.1.8, apache-tvm-ffi, quack-kernels (the last three only for
#                     Mamba-3 kernels, imported inside try/except; not needed for the Mamba v1
#                     block seqbench uses, so not downloaded — tilelang alone is a large binary)
#   causal-conv1d  build: setuptools, wheel, torch   run: torch, packaging, ninja
# The GPU image of this workplace ships torch, triton, transformers, huggingface_hub, einops,
# ninja, packaging, setuptools and wheel; seqbench's own pydantic, pooch and platformdirs are not
# there. build_kernels.sh and env.sh install from .gpu/wheels only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEST=.gpu
PYVER=3.12   # the GPU image's python3 (3.12.3 when last seen); wheels are picked for it
MAMBA_SSM_VERSION=${MAMBA_SSM_VERSION:-2.3.2.post1}       # newest 2.x on PyPI when written
CAUSAL_CONV1D_VERSION=${CAUSAL_CONV1D_VERSION:-1.7.0}     # newest 1.x on PyPI when written
while [ $# -gt 0 ]; do
    case "$1" in
        --dest) DEST=$2; shift 2 ;;
        --python-version) PYVER=$2; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "download_sdists: unknown argument $1" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
SDISTS=$DEST/sdists
WHEELS=$DEST/wheels
mkdir -p "$SDISTS" "$WHEELS"

echo "== sdists: mamba-ssm==$MAMBA_SSM_VERSION causal-conv1d==$CAUSAL_CONV1D_VERSION -> $SDISTS"
MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE \
CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE \
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation -d "$SDISTS" \
    "mamba-ssm==$MAMBA_SSM_VERSION" "causal-conv1d==$CAUSAL_CONV1D_VERSION"
(cd "$SDISTS" && sha256sum "mamba_ssm-$MAMBA_SSM_VERSION.tar.gz" \
    "causal_conv1d-$CAUSAL_CONV1D_VERSION.tar.gz" > SHA256SUMS)

# Pinned to the versions seqbench is tested with here; pydantic pins pydantic-core exactly.
RUNTIME=(
    pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
    typing-extensions==4.16.0 pooch==1.9.0 platformdirs==4.14.7
)
BUILD=(einops ninja packaging setuptools wheel)
echo "== wheels for CPython $PYVER, manylinux x86_64 -> $WHEELS"
PLATFORMS=()
for n in 17 27 28 31 34; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$PYVER" "${PLATFORMS[@]}" -d "$WHEELS" "${RUNTIME[@]}" "${BUILD[@]}"

# One version per package: a second one would make `pip install --find-links` ambiguous.
dupes=$(ls "$WHEELS" | sed -E 's/-[0-9][^-]*-.*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [ -n "$dupes" ]; then
    echo "download_sdists: several versions of: $dupes in $WHEELS; keep one of each" >&2
    exit 1
fi
echo "== done"
ls -l "$SDISTS" "$WHEELS"
du -sh "$SDISTS" "$WHEELS"
