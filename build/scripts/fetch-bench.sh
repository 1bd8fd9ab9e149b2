#!/usr/bin/env bash
# fetch-bench.sh - time `pop3 fetch` against Debian's mpop, fetchmail and
# getmail6, side by side in one run, against a local Dovecot (dovecot-bench.sh).
# pop3 runs in two builds: the ReadyToRun publish (row pop3) and the native AOT
# publish (row pop3-native), both as docs/cli.md installs them.
#
#   fetch-bench.sh [-n RUNS] [-o REPORT.md] [DIR]
#
# DIR (default: a new mktemp -d under /var/tmp) holds the Dovecot instance,
# the built CLI, the tools' configs and the Maildirs: every tool writes to the
# same file system. For each set (bencha: 2,000 x 4 KiB, benchb: 50 x 1 MiB)
# each tool runs RUNS times (default 5), interleaved (the order rotates each
# round), fetching the whole mailbox in keep mode with empty state into a
# fresh Maildir; `sync` before every run. Timing and peak memory come from
# /usr/bin/time -v (wall clock, maximum resident set size: for fetchmail that
# is the largest of fetchmail and its MDA children). Every run is checked:
# the Maildir must hold exactly the mailbox's message count, else the script
# fails. Prints a Markdown table per set (and writes it to REPORT.md with -o).
# Dovecot is stopped at the end.
set -euo pipefail

RUNS=5
REPORT=
while getopts "n:o:" opt; do
  case $opt in
    n) RUNS=$OPTARG ;;
    o) REPORT=$OPTARG ;;
    *) echo "usage: $0 [-n RUNS] [-o REPORT.md] [DIR]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
if [[ $# -ge 1 ]]; then DIR=$1; mkdir -p "$DIR"; else DIR=$(mktemp -d /var/tmp/fetch-bench.XXXXXX); fi
DIR=$(cd "$DIR" && pwd -P)
PORT=10110
PASSWORD=bench
TOOLS=(pop3 pop3-native mpop fetchmail getmail6)
# user:count:size
SETS=("bencha:2000:4096" "benchb:50:1048576")

log() { echo "fetch-bench: $*" >&2; }
die() { log "$*"; exit 1; }

# --- packages ---------------------------------------------------------------
need=()
command -v mpop >/dev/null || need+=(mpop)
command -v fetchmail >/dev/null || need+=(fetchmail)
command -v getmail >/dev/null || need+=(getmail6)
[[ -x /usr/bin/time ]] || need+=(time)
if [[ ${#need[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] || die "missing ${need[*]} and not root"
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${need[@]}" >&2; then
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${need[@]}" >&2
  fi
  [[ $created_policy -eq 0 ]] || rm -f /usr/sbin/policy-rc.d
fi

# --- server and CLI -----------------------------------------------------------
"$HERE/dovecot-bench.sh" start "$DIR/dovecot"
trap '"$HERE/dovecot-bench.sh" stop "$DIR/dovecot" || true' EXIT

# Published the way docs/cli.md installs it for speed: ReadyToRun (precompiled), so that a
# fetch does not spend its first few hundred milliseconds in the JIT.
log "publishing src/Pop3Functional.Cli (Release, ReadyToRun) into $DIR/cli"
dotnet publish "$REPO/src/Pop3Functional.Cli" -c Release -r linux-x64 --self-contained false \
  -p:PublishReadyToRun=true -o "$DIR/cli" -nologo -v q >"$DIR/build.log" 2>&1 \
  || { tail -n 30 "$DIR/build.log" >&2; die "build failed"; }
POP3=$DIR/cli/pop3
[[ -x $POP3 ]] || die "no $POP3 after the build"

# And natively compiled (AOT): no runtime start-up and no JIT at all (about 3 minutes to build).
log "publishing src/Pop3Functional.Cli (Release, native AOT) into $DIR/native"
dotnet publish "$REPO/src/Pop3Functional.Cli" -c Release -r linux-x64 -p:PublishAot=true \
  -o "$DIR/native" -nologo -v q >"$DIR/build-native.log" 2>&1 \
  || { tail -n 30 "$DIR/build-native.log" >&2; die "native build failed"; }
POP3_NATIVE=$DIR/native/pop3
[[ -x $POP3_NATIVE ]] || die "no $POP3_NATIVE after the native build"

# --- one run --------------------------------------------------------------------
# Every tool runs as the unprivileged user "nobody" with HOME in its state
# directory (as root, getmail_maildir refuses to run and fetchmail warns; no
# operator runs them as root). Without root, they run as the caller.
chmod 0755 "$DIR"
# fetchmail has no Maildir delivery of its own: it runs this MDA once per
# message (sh + cat + sync + mv: write to tmp/, fsync the file, rename to new/).
# (getmail6's getmail_maildir would be the obvious MDA, but it refuses to run
# as root and costs ~70 ms of Python start-up per message.)
cat >"$DIR/maildir-mda.sh" <<'MDA'
#!/bin/sh
set -e
n=$(printf 'fm.%s.bench' "$$")
cat >"$1/tmp/$n"
sync "$1/tmp/$n"
mv "$1/tmp/$n" "$1/new/$n"
MDA
chmod 0755 "$DIR/maildir-mda.sh"

# run_tool TOOL USER OUT_MAILDIR STATE_DIR: writes the config, runs the fetch
# under /usr/bin/time -v into $STATE_DIR/time.txt.
run_tool() {
  local tool=$1 user=$2 md=$3 st=$4
  local -a cmd as_user=(env HOME="$st")
  [[ $(id -u) -ne 0 ]] || as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups "${as_user[@]}")
  mkdir -p "$md/cur" "$md/new" "$md/tmp" "$st"
  case $tool in
    pop3 | pop3-native)
      # The Maildir is created by pop3 itself when missing; it is already there.
      local program=$POP3
      [[ $tool != pop3-native ]] || program=$POP3_NATIVE
      cmd=(env POP3_BENCH_PASSWORD=$PASSWORD "$program" fetch "$md" --host 127.0.0.1 --port $PORT --tls none --allow-plaintext-password \
        --user "$user" --password-env POP3_BENCH_PASSWORD)
      ;;
    mpop)
      cat >"$st/mpoprc" <<EOF
defaults
account bench
host 127.0.0.1
port $PORT
tls off
auth user
user $user
password $PASSWORD
pipelining auto
keep on
only_new on
uidls_file $st/mpop_uidls
delivery maildir $md
EOF
      chmod 0600 "$st/mpoprc"
      cmd=(mpop --file="$st/mpoprc" --quiet bench)
      ;;
    fetchmail)
      cat >"$st/fetchmailrc" <<EOF
set no bouncemail
poll 127.0.0.1 service $PORT protocol pop3 uidl auth password
  user "$user" password "$PASSWORD"
  keep
  sslproto ''
  mda "/bin/sh $DIR/maildir-mda.sh $md"
EOF
      chmod 0600 "$st/fetchmailrc"
      cmd=(env FETCHMAILHOME="$st" fetchmail --fetchmailrc "$st/fetchmailrc" --idfile "$st/fetchids" --nodetach --silent)
      ;;
    getmail6)
      cat >"$st/getmailrc" <<EOF
[retriever]
type = SimplePOP3Retriever
server = 127.0.0.1
port = $PORT
username = $user
password = $PASSWORD
timeout = 10

[destination]
type = Maildir
path = $md/

[options]
delete = false
read_all = false
verbose = 0
EOF
      cmd=(getmail --getmaildir "$st" --rcfile "$st/getmailrc")
      ;;
  esac
  [[ $(id -u) -ne 0 ]] || chown -R nobody:nogroup "$(dirname "$md")"
  /usr/bin/time -v -o "$st/time.txt" "${as_user[@]}" "${cmd[@]}" >"$st/out.txt" 2>&1
}

# wall seconds and max RSS (KiB) from a /usr/bin/time -v file
parse_time() {
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
    /Maximum resident set size/ { rss = $2 }
    END { printf "%.3f %d\n", wall, rss }' "$1"
}

RESULTS=$DIR/results.tsv
: >"$RESULTS"
for set in "${SETS[@]}"; do
  IFS=: read -r user count size <<<"$set"
  for ((r = 1; r <= RUNS; r++)); do
    for ((k = 0; k < ${#TOOLS[@]}; k++)); do
      tool=${TOOLS[$(((k + r - 1) % ${#TOOLS[@]}))]}
      work=$DIR/runs/$user-$tool-$r
      rm -rf "$work"
      sync
      rc=0
      run_tool "$tool" "$user" "$work/Maildir" "$work/state" || rc=$?
      got=$(find "$work/Maildir/new" "$work/Maildir/cur" -type f | wc -l)
      read -r wall rss < <(parse_time "$work/state/time.txt")
      if [[ $rc -ne 0 || $got -ne $count ]]; then
        # A failed run is reported (column "failed runs"), not timed.
        log "$tool on $user (run $r) FAILED: exit $rc, $got of $count messages, ${wall} s: $(tail -n 1 "$work/state/out.txt")"
        [[ $tool != pop3* ]] || die "$tool failed"
        wall=FAIL
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$user" "$tool" "$r" "$wall" "$rss" "$((count * size))" >>"$RESULTS"
      log "$user $tool run $r: ${wall} s, max RSS ${rss} KiB"
      rm -rf "$work/Maildir"
    done
  done
done

# --- report ---------------------------------------------------------------------
TABLES=$(python3 - "$RESULTS" <<'PYEOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
names = {"bencha": "2,000 x 4 KiB (bencha)", "benchb": "50 x 1 MiB (benchb)"}
counts = {"bencha": 2000, "benchb": 50}
order = ["pop3", "pop3-native", "mpop", "fetchmail", "getmail6"]
for user in ["bencha", "benchb"]:
    data, fails = {}, {}
    for u, tool, run, wall, rss, octets in rows:
        if u == user:
            if wall == "FAIL":
                fails[tool] = fails.get(tool, 0) + 1
            else:
                data.setdefault(tool, []).append((float(wall), int(rss), int(octets)))
    if not data:
        continue
    ref = statistics.median(w for w, _, _ in data["pop3"])
    print(f"### {names[user]}\n")
    print("| tool | median s | min-max s | messages/s | MB/s | median peak RSS MiB | time / pop3's | failed runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for tool in order:
        if tool not in data:
            print(f"| {tool} | - | - | - | - | - | - | {fails.get(tool, 0)} |")
            continue
        walls = [w for w, _, _ in data[tool]]
        med = statistics.median(walls)
        rss = statistics.median(r for _, r, _ in data[tool]) / 1024
        octets = data[tool][0][2]
        print(f"| {tool} | {med:.2f} | {min(walls):.2f}-{max(walls):.2f} | {counts[user] / med:,.0f} | "
              f"{octets / med / 1e6:.1f} | {rss:.1f} | {med / ref:.2f}x | {fails.get(tool, 0)} |")
    print()
PYEOF
)
echo "$TABLES"
if [[ -n $REPORT ]]; then
  {
    echo "<!-- generated by build/scripts/fetch-bench.sh -n $RUNS on $(date -u '+%Y-%m-%d %H:%M UTC') -->"
    echo "$TABLES"
  } >"$REPORT"
  log "wrote $REPORT"
fi
log "raw results: $RESULTS"
