#!/bin/sh
# Demo worker: checks the API once, announces readiness on its log, then ticks until stopped.
set -eu
python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$API_URL"
echo "worker ready (api at $API_URL)"
trap 'echo "worker stopping"; exit 0' TERM INT
while :; do
  sleep 5 &
  wait $!
  echo "tick $(date -u +%H:%M:%S)"
done
