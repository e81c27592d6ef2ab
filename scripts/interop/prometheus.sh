#!/usr/bin/env bash
# Interop test of razar's metrics against the real Prometheus tools (DESIGN §11):
#   1. `promtool check rules` on the upstream alert rules (razar_failover.yml, read from
#      $RAZAR_UPSTREAM_FIXTURES, default ../shared/upstream-fixtures/abzu beside the repository;
#      when absent, every step that needs them is skipped with a line saying so, and recorded in
#      $RAZAR_TEST_SKIP_LOG when that is set);
#   2. razar's exposition (a populated registry dumped by a unit test) passes
#      `promtool check metrics` and holds every series the alert rules read;
#   3. a live scrape of a running razar boot passes `promtool check metrics`
#      (check_live_scrape), and a real Prometheus scrapes it, finds razar_component_up and
#      evaluates every rule of the razar-failover group with health "ok"
#      (run_prometheus_against).
# By default step 3 boots a real razar (with a failing component) and scrapes it; set
# RAZAR_METRICS_URL to the /metrics URL of an already running razar to test that instead.
# Installs Debian's prometheus package when promtool/prometheus are missing (needs root).
# Every wait is bounded. Source the file to call check_live_scrape / run_prometheus_against
# on their own.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
UPSTREAM="${RAZAR_UPSTREAM_FIXTURES:-$(dirname "$repo")/shared/upstream-fixtures/abzu}"
RULES="$UPSTREAM/monitoring/alerts/razar_failover.yml"
have_rules=false
[ -f "$RULES" ] && have_rules=true

work=""
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ -z "$work" ] || rm -rf "$work"
}

# Creates the scratch directory (removed, with every process started here, at exit).
init_work() {
  [ -z "$work" ] || return 0
  work="$(mktemp -d)"
  trap cleanup EXIT
}

say() { printf '  %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

install_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    return
  fi
  [ "$(id -u)" = 0 ] || fail "promtool/prometheus missing and not root: apt-get install prometheus"
  say "installing Debian's prometheus package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts its own service on :9090; this test runs its own instance.
  (service prometheus stop || systemctl disable --now prometheus || true) >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `cmd…` succeeds, at most $1 seconds, retrying every 0.2 s.
wait_for() {
  local limit="$1"
  shift
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# Metric names the alert rules' expressions read (one per line, sorted).
rule_series() {
  sed -n '/expr:/,/for:/p' "$RULES" | grep -o 'razar_[a-z_]*' | sort -u
}

# Sample names in an exposition read from stdin (one per line, sorted).
sample_names() {
  grep -v '^#' | grep -v '^$' | sed 's/[{ ].*//' | sort -u
}

# Records that the upstream-rule step $1 was skipped because the rules are absent.
skip_upstream() {
  local line="skipped (upstream fixtures absent): interop/prometheus: $1: needs $RULES"
  echo "$line" >&2
  [ -z "${RAZAR_TEST_SKIP_LOG:-}" ] || echo "$line" >>"$RAZAR_TEST_SKIP_LOG"
}

# Fails unless the exposition in file $1 holds every series the alert rules read.
check_rule_series_present() {
  local names missing
  if ! $have_rules; then
    skip_upstream "alert-rule series present in $(basename "$1")"
    return 0
  fi
  [ -n "$(rule_series)" ] || fail "no series found in the alert rules $RULES"
  names="$(sample_names <"$1")"
  missing="$(comm -23 <(rule_series) <(printf '%s\n' "$names"))"
  [ -z "$missing" ] || fail "series used by $(basename "$RULES") missing from $1: $missing"
  say "every series of the alert rules is exposed: $(rule_series | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------
# check_live_scrape URL: scrapes URL once with curl and runs `promtool check metrics` on it;
# also checks that every series the alert rules read is present.
# ---------------------------------------------------------------------------------------------
check_live_scrape() {
  init_work
  local url="$1" out="$work/scrape.prom" headers="$work/scrape.headers"
  curl -fsS --max-time 10 -D "$headers" -o "$out" "$url" || fail "scraping $url"
  grep -qi '^content-type: text/plain; version=0.0.4' "$headers" || fail "$url: wrong Content-Type: $(cat "$headers")"
  promtool check metrics <"$out" || fail "promtool check metrics rejected $url"
  check_rule_series_present "$out"
  say "live scrape of $url passes promtool check metrics"
}

# ---------------------------------------------------------------------------------------------
# run_prometheus_against URL: starts a real Prometheus (temp config and storage, 1 s scrape and
# evaluation interval, the upstream alert rules, loopback free port) scraping URL; waits
# (bounded) until a query for razar_component_up returns data and every rule of the
# razar-failover group has been evaluated with health "ok"; then stops it.
# ---------------------------------------------------------------------------------------------
run_prometheus_against() {
  init_work
  local url="$1"
  local rest="${url#*://}"
  local target="${rest%%/*}"
  local path="/${rest#*/}"
  [ "$path" != "/$rest" ] || path="/metrics"
  local dir="$work/prometheus" port
  mkdir -p "$dir/data"
  port="$(free_port)"
  local rule_files="[]"
  $have_rules && rule_files="[\"$RULES\"]"
  cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: $rule_files
scrape_configs:
  - job_name: razar
    metrics_path: $path
    static_configs:
      - targets: ["$target"]
EOF
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" >"$dir/log" 2>&1 &
  local prom=$!
  pids+=("$prom")
  local api="http://127.0.0.1:$port/api/v1"

  if ! wait_for 60 query_has_data "$api" razar_component_up; then
    tail -20 "$dir/log" >&2
    fail "prometheus never returned razar_component_up from $url"
  fi
  say "prometheus scraped $url: razar_component_up has data"
  if ! $have_rules; then
    skip_upstream "prometheus evaluates the razar-failover rules"
  elif ! wait_for 60 rules_healthy "$api"; then
    curl -fsS --max-time 5 "$api/rules" >&2 || true
    fail "the razar-failover rules did not all evaluate with health ok"
  else
    say "prometheus evaluated every razar-failover rule with health ok"
  fi

  kill "$prom"
  wait "$prom" 2>/dev/null || true
}

# True when the instant query $2 returns a non-empty result.
query_has_data() {
  curl -fs --max-time 5 "$1/query?query=$2" 2>/dev/null | python3 -c '
import json, sys
try:
    body = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
sys.exit(0 if body.get("status") == "success" and body["data"]["result"] else 1)'
}

# True when the razar-failover group exists, has rules, and each was evaluated with health ok.
rules_healthy() {
  curl -fs --max-time 5 "$1/rules" 2>/dev/null | python3 -c '
import json, sys
try:
    groups = json.load(sys.stdin)["data"]["groups"]
except (ValueError, KeyError):
    sys.exit(1)
group = next((g for g in groups if g["name"] == "razar-failover"), None)
ok = (
    group is not None
    and len(group["rules"]) > 0
    and all(r["health"] == "ok" and not r["lastEvaluation"].startswith("0001-") for r in group["rules"])
)
sys.exit(0 if ok else 1)'
}

# Boots a real razar in a scratch root — one healthy service and one component that keeps
# failing (--keep-going, so the boot stays up) — with the exporter on a free port, and sets
# razar_url to its /metrics URL once the boot is ready.
start_razar() {
  init_work
  local bin="${RAZAR_BIN:-$repo/target/debug/razar}" root="$work/root"
  [ -x "$bin" ] || (cd "$repo" && cargo build --quiet --locked) || fail "building razar"
  mkdir -p "$root/config"
  cat >"$root/config/boot_config.json" <<'JSON'
{
  "metrics": {"port": 0},
  "components": [
    {"name": "web", "command": "echo ready; exec sleep 600", "health_check": {"log": "^ready$"},
     "liveness": {"exec": ["true"], "period": "1s"}},
    {"name": "broken", "kind": "task", "command": "echo 'ModuleNotFoundError: No module named foo' >&2; exit 1"}
  ]
}
JSON
  "$bin" --root "$root" boot --keep-going --retries 0 >"$work/razar.out" 2>"$work/razar.err" &
  pids+=("$!")
  wait_for 30 python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if s.get("phase") == "ready" and s.get("metrics_url") else 1)' "$root/logs/razar_state.json" ||
    { cat "$work/razar.err" >&2; fail "razar did not become ready"; }
  razar_url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics_url"])' "$root/logs/razar_state.json")"
}

main() {
  init_work
  install_prometheus

  if $have_rules; then
    echo "promtool check rules $(basename "$RULES")"
    promtool check rules "$RULES" || fail "promtool check rules"
  else
    skip_upstream "promtool check rules"
  fi

  echo "promtool check metrics on razar's exposition"
  local dump="$work/razar_metrics.prom"
  (cd "$repo" && RAZAR_METRICS_DUMP="$dump" cargo test --quiet --locked --lib \
    metrics::tests::dump_for_promtool -- --ignored --exact >"$work/dump.log" 2>&1) ||
    {
      cat "$work/dump.log" >&2
      fail "dumping the metrics"
    }
  [ -s "$dump" ] || fail "the metrics dump is empty"
  promtool check metrics <"$dump" || fail "promtool check metrics rejected razar's exposition"
  check_rule_series_present "$dump"

  local url="${RAZAR_METRICS_URL:-}"
  if [ -z "$url" ]; then
    start_razar
    url="$razar_url"
    echo "live checks against a running razar boot with a failed component at $url"
    curl -fs --max-time 5 "$url" | grep -q '^razar_component_up{component="broken"} 0' ||
      fail "the failed component is not reported down"
  else
    echo "live checks against $url"
  fi
  check_live_scrape "$url"
  run_prometheus_against "$url"

  echo "prometheus interop: ok"
}

# Sourcing the file (`. scripts/interop/prometheus.sh`) defines the functions without running.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
