#!/usr/bin/env bash
# Interop test of `razar export` against the engines' own validators (DESIGN §14):
#   - every example config — the demo stack (config/boot_config.json), the field-by-field
#     fixture (tests/fixtures/export/full.json) and the upstream samples under
#     $RAZAR_UPSTREAM_FIXTURES (default ../shared/upstream-fixtures/abzu beside the repository;
#     skipped with a line, recorded in $RAZAR_TEST_SKIP_LOG when set, when absent) — is
#     exported to systemd units and Kubernetes manifests;
#   - the units pass `systemd-analyze verify` with nothing on stderr (Debian's systemd);
#   - the manifests pass `kubernetes-validate --strict` for Kubernetes $K8S_VERSION (PyPI's
#     kubernetes-validate; default: the newest version it knows);
#   - order, readiness and restart budgets are visible in the demo's output.
# Installs what is missing (systemd, kubernetes-validate) through scripts/install-test-deps.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
UPSTREAM="${RAZAR_UPSTREAM_FIXTURES:-$(dirname "$repo")/shared/upstream-fixtures/abzu}"
RAZAR_BIN="${RAZAR_BIN:-$repo/target/debug/razar}"
K8S_VERSION="${K8S_VERSION:-}"

say() { printf '  %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

command -v systemd-analyze >/dev/null && command -v kubernetes-validate >/dev/null || "$repo/scripts/install-test-deps"
[ -x "$RAZAR_BIN" ] || (cd "$repo" && cargo build --quiet --locked) || fail "building razar"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

configs=("$repo/config/boot_config.json" "$repo/tests/fixtures/export/full.json")
for rel in razar/boot_config.json config/razar_config.yaml; do
  if [ -f "$UPSTREAM/$rel" ]; then
    configs+=("$UPSTREAM/$rel")
  else
    line="skipped (upstream fixtures absent): interop/export: $rel: needs $UPSTREAM/$rel"
    echo "$line"
    [ -z "${RAZAR_TEST_SKIP_LOG:-}" ] || echo "$line" >>"$RAZAR_TEST_SKIP_LOG"
  fi
done

kv_args=(--strict --quiet)
[ -z "$K8S_VERSION" ] || kv_args+=(-k "$K8S_VERSION")

n=0
for config in "${configs[@]}"; do
  n=$((n + 1))
  out="$work/$n"
  # The root the config is exported for: where the stack lives on the target host.
  "$RAZAR_BIN" --root /srv/stack export --format systemd --config "$config" --razar "$RAZAR_BIN" \
    --out "$out/systemd" >/dev/null 2>"$out.systemd.notes" || fail "export --format systemd of $config: $(cat "$out.systemd.notes")"
  verify="$(cd "$out/systemd" && systemd-analyze verify ./* 2>&1)" || fail "systemd-analyze verify rejected the units of $config:
$verify"
  [ -z "$verify" ] || fail "systemd-analyze verify warned about the units of $config:
$verify"
  say "systemd: $(ls "$out/systemd" | wc -l) units of $config pass systemd-analyze verify ($(grep -c '^razar: export: not expressible' "$out.systemd.notes" || true) notes)"

  "$RAZAR_BIN" --root /srv/stack export --format k8s --config "$config" \
    --out "$out/k8s" >/dev/null 2>"$out.k8s.notes" || fail "export --format k8s of $config: $(cat "$out.k8s.notes")"
  kubernetes-validate "${kv_args[@]}" "$out"/k8s/*.yaml || fail "kubernetes-validate rejected the manifests of $config"
  say "k8s: $(grep -c '^kind:' "$out"/k8s/*.yaml) objects of $config pass kubernetes-validate ($(grep -c '^razar: export: not expressible' "$out.k8s.notes" || true) notes)"
done

# The demo stack: order, readiness and restart budgets are in the output.
demo="$work/1"
grep -q '^Requires=demo-migrate.service$' "$demo/systemd/demo-api.service" || fail "api does not require migrate"
grep -q '^After=demo-api.service$' "$demo/systemd/demo-worker.service" || fail "worker is not ordered after api"
grep -q '^ExecStartPost=.* probe http://127.0.0.1:8765/healthz.txt --body ok --wait' "$demo/systemd/demo-api.service" ||
  fail "api's unit has no readiness gate"
grep -q '^StartLimitBurst=6$' "$demo/systemd/demo-api.service" || fail "api's restart budget is missing"
grep -q 'startupProbe:' "$demo/k8s/demo.yaml" || fail "no startupProbe in the manifests"
grep -q 'name: wait-api' "$demo/k8s/demo.yaml" || fail "worker has no initContainer waiting for api"
grep -q 'backoffLimit: 5' "$demo/k8s/demo.yaml" || fail "migrate's restart budget is missing"
say "the demo's order, readiness gates and restart budgets are in both exports"
echo "interop export: ok"
