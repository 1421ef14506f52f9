#!/usr/bin/env bash
# Copy the generated CRDs (crds/, from `python -m lvs_api.crdgen --out crds`) into the Helm chart's crds/
# folder, byte for byte, and drop chart CRDs that no longer exist upstream.
#   scripts/sync-chart-crds.sh          copy
#   scripts/sync-chart-crds.sh --check  exit 1 (listing the differences) when the chart has drifted
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="$repo/crds"
chart_dir="$repo/charts/lvs-operator/crds"
mode="${1:-sync}"

shopt -s nullglob
sources=("$source_dir"/*.yaml)
if [ "${#sources[@]}" -eq 0 ]; then
    echo "sync-chart-crds: no CRDs in $source_dir (run: python -m lvs_api.crdgen --out crds)" >&2
    exit 2
fi

drift=0
for source in "${sources[@]}"; do
    target="$chart_dir/$(basename "$source")"
    if ! cmp -s "$source" "$target"; then
        drift=1
        if [ "$mode" = "--check" ]; then
            echo "differs: charts/lvs-operator/crds/$(basename "$source")" >&2
        else
            mkdir -p "$chart_dir"
            cp "$source" "$target"
            echo "copied: $(basename "$source")"
        fi
    fi
done
for target in "$chart_dir"/*.yaml; do
    if [ ! -e "$source_dir/$(basename "$target")" ]; then
        drift=1
        if [ "$mode" = "--check" ]; then
            echo "stale: charts/lvs-operator/crds/$(basename "$target")" >&2
        else
            rm "$target"
            echo "removed: $(basename "$target")"
        fi
    fi
done

if [ "$mode" = "--check" ] && [ "$drift" -ne 0 ]; then
    echo "sync-chart-crds: the chart's CRDs differ from crds/; run scripts/sync-chart-crds.sh" >&2
    exit 1
fi
exit 0
