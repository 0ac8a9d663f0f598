#!/usr/bin/env bash
# Copy the local datasets the GPU session needs into the git-ignored .gpu/data/ and print the
# `carry` list for the device tool, with the total size (docs/gpu.md). Run here, in the repo:
#
#   bash benchmarks/gpu/prepare_carry.sh [--from DIR]     # DIR default: $SEQBENCH_SHARED_DATA
#                                                         # or ../shared/data
#
# Copies amazon-beauty/Beauty.txt, ml-1m/ml-1m.seq.txt and ml-1m/movies.dat (and their SOURCE.md)
# — the files benchmarks/gpu/throughput.py, parity.py and suites/reproduce-{beauty,ml1m}.toml read —
# checking the sha256 recorded in ../shared/data/*/SOURCE.md. The licenses of MovieLens and of
# the Amazon reviews forbid redistribution: .gpu/ is git-ignored and must never be committed.
# On the GPU machine, benchmarks/gpu/env.sh makes .gpu/data the data folder (SEQBENCH_DATA_DIR),
# where the suites' `file =` datasets are found.
set -euo pipefail
cd "$(dirname "$0")/../.."

FROM=${SEQBENCH_SHARED_DATA:-../shared/data}
while [ $# -gt 0 ]; do
    case "$1" in
        --from) FROM=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "prepare_carry: unknown argument $1" >&2; exit 2 ;;
    esac
done
DEST=.gpu/data
LIMIT=$((64 * 1024 * 1024))   # the device tool's limit for the working tree and carry together

# file  sha256 (from the SOURCE.md beside each file; empty = not checked)
FILES=(
    "amazon-beauty/Beauty.txt 226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"
    "amazon-beauty/SOURCE.md -"
    "ml-1m/ml-1m.seq.txt 3b3803d72c034929ada18b2cbd114296261c012b7a3e10282543adeceba53fb1"
    "ml-1m/movies.dat 0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"
    "ml-1m/SOURCE.md -"
)
for entry in "${FILES[@]}"; do
    read -r rel sha <<< "$entry"
    src="$FROM/$rel"
    [ -f "$src" ] || { echo "prepare_carry: $src not found (--from DIR)" >&2; exit 1; }
    if [ "$sha" != - ]; then
        got=$(sha256sum "$src" | cut -d' ' -f1)
        [ "$got" = "$sha" ] || { echo "prepare_carry: $src has sha256 $got, expected $sha" >&2; exit 1; }
    fi
    mkdir -p "$DEST/$(dirname "$rel")"
    cp -p "$src" "$DEST/$rel"
done
echo "copied into $DEST (never commit it):"
(cd "$DEST" && find . -type f | sort | xargs ls -l | awk '{printf "    %10d  %s\n", $5, $9}')

CARRY=(.gpu/data .gpu/sdists .gpu/wheels)
for dir in .gpu/sdists .gpu/wheels; do
    [ -d "$dir" ] || echo "prepare_carry: $dir is missing: run benchmarks/gpu/download_sdists.sh" >&2
done
carry_bytes=$(du -cb "${CARRY[@]}" 2>/dev/null | tail -n 1 | cut -f1)
# the tree that travels besides: tracked and untracked-not-ignored files (approximated here
# without git: everything but .git, .gpu, results and caches)
tree_bytes=$(du -cb --exclude=.git --exclude=.gpu --exclude=results --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude=.ruff_cache --exclude='*.egg-info' --exclude=.benchmarks \
    . | tail -n 1 | cut -f1)
total=$((carry_bytes + tree_bytes))
awk -v c="$carry_bytes" -v t="$tree_bytes" 'BEGIN { m = 1048576;
    printf "carry %.1f MiB + working tree ~%.1f MiB = %.1f MiB (limit 64 MiB)\n", c/m, t/m, (c+t)/m }'
echo 'carry: [".gpu/data", ".gpu/sdists", ".gpu/wheels"]'
if [ "$total" -gt "$LIMIT" ]; then
    echo "prepare_carry: over the 64 MiB limit" >&2
    exit 1
fi
