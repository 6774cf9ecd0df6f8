#!/usr/bin/env bash
# Drive the gateway with sipp (an independent SIP implementation) in load mode and print
# its final statistics: calls placed, successful, failed, and INVITE→200 response times.
#
#   scripts/load-sipp.sh [TARGET] [RATE] [CALLS] [LIMIT] [HOLD_MS]
#     TARGET   host:port of the gateway (127.0.0.1:5060); loopback only
#     RATE     new calls per second (300)
#     CALLS    calls in total (3000)
#     LIMIT    calls in progress at most (1000)
#     HOLD_MS  how long each call stays up before sipp sends BYE (2000)
#
# Uses sipp's built-in UAC scenario (INVITE, 200, ACK, pause, BYE) to number 8890. The
# statistics CSV and sipp's logs are kept in the directory printed at the end.
# Exit status: sipp's (0 = every call succeeded).
set -euo pipefail
target="${1:-127.0.0.1:5060}"
rate="${2:-300}"
calls="${3:-3000}"
limit="${4:-1000}"
hold="${5:-2000}"
case "$target" in
  127.*|localhost:*) ;;
  *) echo "refusing $target: loopback only" >&2; exit 2 ;;
esac
command -v sipp >/dev/null || { echo "sipp is not installed (scripts/setup.sh)" >&2; exit 2; }
out="$(mktemp -d /tmp/hotline-sipp.XXXXXX)"
cd "$out"
timeout_s=$(( calls / rate + hold / 1000 + 60 ))
set +e
sipp -sn uac -s 8890 -i 127.0.0.1 -p 0 -mp 16000 \
  -r "$rate" -l "$limit" -m "$calls" -d "$hold" \
  -recv_timeout 30000 -timeout "${timeout_s}s" -timeout_error \
  -trace_stat -stf stats.csv -fd 1 -trace_err -error_file errors.log \
  -nostdin -nd "$target" >sipp.out 2>&1
status=$?
set -e
python3 - stats.csv <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
v = dict(zip(head, last))
def f(k): return v.get(k, '?')
print(f"sipp: elapsed {f('ElapsedTime(C)')}, calls created {f('TotalCallCreated')}, "
      f"successful {f('SuccessfulCall(C)')}, failed {f('FailedCall(C)')}, "
      f"peak concurrent {max(int(dict(zip(head, r)).get('CurrentCall', 0) or 0) for r in rows[1:])}")
print(f"sipp: rate achieved {float(f('CallRate(C)')):.1f} calls/s, "
      f"INVITE->200 mean {f('ResponseTime1(C)')} (stdev {f('ResponseTime1StDev(C)')})")
for k in head:
    if k.startswith('ResponseTimeRepartition1_') and k.endswith('(C)'):
        print(f"  rtd {k[len('ResponseTimeRepartition1_'):-3]:>12}: {v[k]}")
PY
echo "sipp exit status $status; files in $out" >&2
exit "$status"
