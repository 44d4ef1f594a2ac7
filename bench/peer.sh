#!/bin/bash
# real-align's annotation queue against Label Studio CE, side by side: one client, one run, the same machine.
#
#   WORK=/tmp/lsbench bench/peer.sh        # NS=1,10,50 DUR=60 TASKS=2000 WAIT_QUIET=180 TAG= SKIP_RA=0 SKIP_LS=0
#
# The client is ../shared/tools/peer-bench/labelstudio_bench.py (PEER_BENCH to change it): N annotators loop
# claim -> label with no think time, then the servers' own records are checked (double hand-outs, items
# labelled twice). Each server runs alone while it is measured: real-align `api --workers 2` on 127.0.0.1:8301
# (Postgres database perf_q, env from $WORK/run/ra_env.sh), then Label Studio (gunicorn x4 on 127.0.0.1:8390,
# Postgres database perf_ls). Before each cell the client waits for a quiet machine, at most WAIT_QUIET s.
#
# WORK holds:
#   ls/     Label Studio's folder: venv/ (pip install label-studio), ls_env.example.sh, tokens.txt (50 annotator
#           tokens from the peer bench's mkusers.py), data/; `label-studio init` done on perf_ls
#   run/    ra_env.sh (the real-align server's env) and ra_items.json (2,000+ prompts with two answers each)
#   results/ written here: A_realalign$TAG.json/.log, A_labelstudio$TAG.json/.log, summary$TAG.md
# docs/benchmarks.md ("Annotation queue: side by side with Label Studio") says how the set-up was made.
set -u
: "${WORK:?set WORK to the folder holding ls/ and run/}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$ROOT/../shared/tools/peer-bench}
CLIENT="$ROOT/.venv/bin/python $PEER_BENCH/labelstudio_bench.py"
OUT=$WORK/results; mkdir -p "$OUT"
NS=${NS:-1,10,50}; DUR=${DUR:-60}; TASKS=${TASKS:-2000}; WAIT_QUIET=${WAIT_QUIET:-180}; TAG=${TAG:-}
PGDATA=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "show data_directory"); PGPID=$(head -1 "$PGDATA/postmaster.pid")
snap() { echo "[$(date -u +%FT%TZ)] $1: load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
snap "start" | tee "$OUT/summary$TAG.md"
stop() { kill -TERM -- "-$1" 2>/dev/null; sleep 5; kill -0 "$1" 2>/dev/null && kill -KILL -- "-$1" 2>/dev/null; }

if [ "${SKIP_RA:-0}" = 0 ]; then
  # shellcheck disable=SC1091
  (cd "$WORK/run" && . ./ra_env.sh && "$ROOT/.venv/bin/real-align" migrate > "$OUT/ra_migrate.log" 2>&1) || exit 1
  (cd "$WORK/run" && . ./ra_env.sh && exec setsid "$ROOT/.venv/bin/real-align" api --host 127.0.0.1 --port 8301 \
    --workers 2 > "$OUT/ra_api.log" 2>&1) &
  RAPID=$!
  for _ in $(seq 1 120); do sleep 1; curl -sf http://127.0.0.1:8301/healthz > /dev/null && break; done; sleep 2
  snap "real-align series start" | tee -a "$OUT/summary$TAG.md"
  # shellcheck disable=SC1091
  (cd "$WORK/run" && . ./ra_env.sh && RA_ITEMS_FILE=$WORK/run/ra_items.json RA_ANNOTATORS=50 \
    RA_PG_DSN=postgresql://postgres@127.0.0.1:5432/perf_q timeout 1800 $CLIENT \
    --adapter realalign --url http://127.0.0.1:8301 --admin-token "$REAL_BOOTSTRAP_ADMIN_KEY" \
    --annotator-token-file "$WORK/ls/tokens.txt" --annotators "$NS" --tasks "$TASKS" --duration "$DUR" \
    --wait-quiet "$WAIT_QUIET" --server-pid "ra=$RAPID" --server-pid "pg=$PGPID" \
    --out "$OUT/A_realalign$TAG.json" --label realalign-pg > "$OUT/A_realalign$TAG.log" 2>&1)
  echo "real-align client rc $?"
  snap "real-align series end" | tee -a "$OUT/summary$TAG.md"
  stop $RAPID
fi

if [ "${SKIP_LS:-0}" = 0 ]; then
  # shellcheck disable=SC1091
  (cd "$WORK/ls" && . ./ls_env.example.sh \
    && SP=$(venv/bin/python -c "import label_studio,os;print(os.path.dirname(label_studio.__file__))") \
    && exec setsid venv/bin/gunicorn --chdir "$SP" --bind 127.0.0.1:8390 --workers 4 core.wsgi:application \
    > "$OUT/ls_gunicorn.log" 2>&1) &
  LSPID=$!
  for _ in $(seq 1 180); do sleep 1; curl -sf http://127.0.0.1:8390/health > /dev/null && break; done; sleep 3
  snap "label studio series start" | tee -a "$OUT/summary$TAG.md"
  # shellcheck disable=SC1091
  (cd "$WORK/ls" && . ./ls_env.example.sh && timeout 1800 $CLIENT \
    --adapter labelstudio --url http://127.0.0.1:8390 --admin-token "$LABEL_STUDIO_USER_TOKEN" \
    --annotator-token-file "$WORK/ls/tokens.txt" --annotators "$NS" --tasks "$TASKS" --duration "$DUR" \
    --wait-quiet "$WAIT_QUIET" --server-pid "ls=$LSPID" --server-pid "pg=$PGPID" \
    --out "$OUT/A_labelstudio$TAG.json" --label labelstudio-gunicorn4-pg > "$OUT/A_labelstudio$TAG.log" 2>&1)
  echo "label studio client rc $?"
  snap "label studio series end" | tee -a "$OUT/summary$TAG.md"
  stop $LSPID
fi

"$ROOT/.venv/bin/python" - "$OUT/A_realalign$TAG.json" "$OUT/A_labelstudio$TAG.json" <<'EOF' | tee -a "$OUT/summary$TAG.md"
import json, sys
from pathlib import Path

runs = {}
for name, path in (("real-align", sys.argv[1]), ("Label Studio", sys.argv[2])):
    if Path(path).exists():
        runs[name] = {r["annotators"]: r for r in json.loads(Path(path).read_text())}
print("| N | real-align rt/s | Label Studio rt/s | ratio | double hand-outs (RA / LS) | labelled twice (RA / LS) "
      "| errors (RA / LS) | client CPU ms/rt (RA / LS) | server CPU ms/rt (RA / LS) | Postgres CPU ms/rt (RA / LS) "
      "| busy cores before (RA / LS) | other load, CPU s (RA / LS) |")
print("|" + "---|" * 12)
ra, ls = runs.get("real-align", {}), runs.get("Label Studio", {})
def per(r, v):
    return f"{v * 1000 / r['round_trips']:.1f}" if r and r["round_trips"] else "-"
def cell(r, f):
    return f(r) if r else "-"
for n in sorted(set(ra) | set(ls)):
    a, b = ra.get(n), ls.get(n)
    ratio = f"**{a['round_trips_per_s'] / b['round_trips_per_s']:.1f}x**" if a and b and b["round_trips_per_s"] else "-"
    srv = lambda r: per(r, sum(v for k, v in r["server_cpu_s"].items() if k != "pg"))
    pg = lambda r: per(r, r["server_cpu_s"].get("pg", 0.0))
    print(f"| {n} | {cell(a, lambda r: r['round_trips_per_s'])} | {cell(b, lambda r: r['round_trips_per_s'])} | {ratio} "
          f"| {cell(a, lambda r: r['double_handouts'])} / {cell(b, lambda r: r['double_handouts'])} "
          f"| {cell(a, lambda r: r['items_labelled_twice_or_more'])} / {cell(b, lambda r: r['items_labelled_twice_or_more'])} "
          f"| {cell(a, lambda r: r['claim_errors'] + r['submit_errors'])} / {cell(b, lambda r: r['claim_errors'] + r['submit_errors'])} "
          f"| {per(a, a['client_cpu_s']) if a else '-'} / {per(b, b['client_cpu_s']) if b else '-'} "
          f"| {cell(a, srv)} / {cell(b, srv)} | {cell(a, pg)} / {cell(b, pg)} "
          f"| {cell(a, lambda r: r['prepare'].get('busy_cores_before_start', '-'))} / - "
          f"| {cell(a, lambda r: r['other_cpu_s'])} / {cell(b, lambda r: r['other_cpu_s'])} |")
EOF
snap "end" | tee -a "$OUT/summary$TAG.md"
