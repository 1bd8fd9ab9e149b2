#!/usr/bin/env bash
# pop3-servers.sh - Dovecot, Courier and Cyrus POP3 servers on loopback for the interop tests.
#
#   pop3-servers.sh start DIR   install (apt, as root) and (re)start all three with fresh mailboxes
#   pop3-servers.sh stop DIR    stop exactly the processes recorded in DIR/pids
#
# `start` stops what an earlier start recorded in DIR, rewrites every config, re-seeds every
# mailbox and starts the servers again, so any number of starts ends in the same state. `stop`
# kills only recorded PIDs. Nothing outside DIR changes except the installed packages (and what
# their own install scripts do; a policy-rc.d that exits 101 keeps them from starting daemons).
#
# Listeners (127.0.0.1 only):
#   server   plain + STLS   implicit TLS
#   Dovecot  11110          11995
#   Courier  12110          12995
#   Cyrus    13110          13995
#   Cyrus    13111          13996  (TLS 1.2 only: SCRAM-*-PLUS with tls-unique)
# Certificate: DIR/ssl/cert.pem, self-signed, SAN DNS:localhost and IP:127.0.0.1.
# Users: see the ACCOUNTS_* lists below; every password is "interop-pw-7". Each test cell that
# changes a mailbox has its own account; each account holds the seeded mailbox of
# tests/Pop3Functional.Interop.Seed (the simulator's generator, seed 20240707: 30 messages with
# dot lines, 998-octet lines, raw 8-bit and encoded-word headers, MIME, an empty body, then a
# 3 MiB base64 attachment). DIR/servers.env lists ports, users and paths for the tests.
#
# What each server offers, as observed on Debian 12 with this configuration:
#   Dovecot 2.3.19  greeting "+OK Dovecot (Debian) ready. <...@vm>" (the APOP timestamp comes from
#                   `apop` in auth_mechanisms; APOP is not a CAPA line). CAPA before login:
#                   CAPA TOP UIDL RESP-CODES PIPELINING AUTH-RESP-CODE STLS USER
#                   SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256 (no STLS over implicit
#                   TLS); after login: CAPA TOP UIDL RESP-CODES PIPELINING AUTH-RESP-CODE. No UTF8.
#                   pop3_lock_session = yes: a second session gets "-ERR [IN-USE] ...".
#   Courier 1.0.16  greeting "+OK Hello there." (no APOP). CAPA before and after login:
#                   SASL PLAIN LOGIN CRAM-MD5 CRAM-SHA1 CRAM-SHA256, STLS, TOP, USER,
#                   LOGIN-DELAY 10, PIPELINING, UIDL, "UTF8 USER", "IMPLEMENTATION Courier Mail
#                   Server" (no STLS over TLS). No RESP-CODES.
#   Cyrus 3.6.1     greeting "+OK localhost Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5 server ready
#                   <...@localhost>" (APOP, from allowapop). CAPA before login:
#                   SASL PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256, STLS,
#                   EXPIRE NEVER, LOGIN-DELAY 0, TOP, UIDL, PIPELINING, RESP-CODES, AUTH-RESP-CODE,
#                   USER, IMPLEMENTATION; over TLS the SASL line adds SCRAM-SHA-1-PLUS and
#                   SCRAM-SHA-256-PLUS; after login SASL, STLS and USER are gone. No UTF8.
# docs/interop.md has the details, the quirks and the test matrix.
set -euo pipefail

DOVECOT_PORT=11110
DOVECOT_TLS_PORT=11995
COURIER_PORT=12110
COURIER_TLS_PORT=12995
CYRUS_PORT=13110
CYRUS_TLS_PORT=13995
# A second pair of Cyrus listeners that speak TLS 1.2 only (tls_versions: tls1_2), where the
# client's channel binding is tls-unique, the one type Cyrus 3.6 accepts for SCRAM-*-PLUS.
CYRUS_TLS12_PORT=13111
CYRUS_TLS12_TLS_PORT=13996
PASSWORD=interop-pw-7

# Accounts per server: "<login>-<tls>-<pipelining>-<utf8>" for the matrix cells (login user or
# apop; tls plain, stls or tls; pipe or step; ascii or utf8), plus single-purpose ones.
cells() { # cells MECHS UTF8S
  local mech tls pipe utf8
  for mech in $1; do
    for tls in plain stls tls; do
      [[ $mech == apop && $tls == stls ]] && continue # APOP after STLS is refused (DESIGN §12)
      for pipe in pipe step; do
        for utf8 in $2; do echo "$mech-$tls-$pipe-$utf8"; done
      done
    done
  done
}
# SASL rows: pipelined and ASCII only; -plus mechanisms over TLS only (STLS and implicit).
sasl_cells() { # sasl_cells MECHS
  local mech tls
  for mech in $1; do
    for tls in plain stls tls; do
      [[ $mech == *-plus && $tls == plain ]] && continue
      echo "$mech-$tls-pipe-ascii"
    done
  done
}
mapfile -t ACCOUNTS_DOVECOT < <(cells "user apop" ascii; sasl_cells "plain login cram-md5 scram-sha-1 scram-sha-256"
  echo lock; echo wrongpw; echo auto)
mapfile -t ACCOUNTS_COURIER < <(cells user "ascii utf8"; sasl_cells "plain login cram-md5"; echo wrongpw; echo capa; echo auto)
mapfile -t ACCOUNTS_CYRUS < <(cells "user apop" ascii
  sasl_cells "plain login cram-md5 scram-sha-1 scram-sha-256 scram-sha-1-plus scram-sha-256-plus"; echo wrongpw; echo auto)

DOVECOT_PACKAGES=(dovecot-core dovecot-pop3d)
# Installable dependencies of courier-pop and cyrus-pop3d, which conflict with dovecot-pop3d
# (all three provide pop3-server): those two are unpacked from their .deb into DIR/pkgroot.
DEPENDENCY_PACKAGES=(courier-base courier-authlib courier-authdaemon courier-authlib-userdb
  cyrus-common sasl2-bin libsasl2-modules openssl)
UNPACKED_PACKAGES=(courier-pop cyrus-pop3d)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
SEED_PROJECT=$REPO/tests/Pop3Functional.Interop.Seed

die() { echo "pop3-servers: $*" >&2; exit 1; }
log() { echo "pop3-servers: $*" >&2; }
usage() { echo "usage: $0 {start|stop} DIR" >&2; exit 2; }

# ---------------------------------------------------------------- packages

install_packages() {
  local missing=() p
  for p in "${DOVECOT_PACKAGES[@]}" "${DEPENDENCY_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null || die "apt-get not found; cannot install ${missing[*]}"
    local created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 0755 /usr/sbin/policy-rc.d
      created_policy=1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1; then
      apt-get update -q >>"$DIR/apt.log" 2>&1
      apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/apt.log" 2>&1 \
        || { tail -n 20 "$DIR/apt.log" >&2; [[ $created_policy -eq 0 ]] || rm -f /usr/sbin/policy-rc.d; die "apt-get install failed"; }
    fi
    [[ $created_policy -eq 0 ]] || rm -f /usr/sbin/policy-rc.d
  fi
  if [[ ! -x $DIR/pkgroot/usr/lib/courier/courier/courierpop3login || ! -x $DIR/pkgroot/usr/lib/cyrus/bin/pop3d ]]; then
    log "unpacking ${UNPACKED_PACKAGES[*]} into $DIR/pkgroot"
    rm -rf "$DIR/debs" "$DIR/pkgroot"
    mkdir -p "$DIR/debs" "$DIR/pkgroot"
    (cd "$DIR/debs" && apt-get download "${UNPACKED_PACKAGES[@]}" >>"$DIR/apt.log" 2>&1) \
      || { (apt-get update -q && cd "$DIR/debs" && apt-get download "${UNPACKED_PACKAGES[@]}") >>"$DIR/apt.log" 2>&1; } \
      || die "apt-get download ${UNPACKED_PACKAGES[*]} failed; see $DIR/apt.log"
    local deb
    for deb in "$DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$DIR/pkgroot"; done
  fi
}

# ---------------------------------------------------------------- shared pieces

write_cert() {
  mkdir -p "$DIR/ssl"
  if [[ ! -s $DIR/ssl/cert.pem || ! -s $DIR/ssl/key.pem ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$DIR/ssl/key.pem" -out "$DIR/ssl/cert.pem" >/dev/null 2>&1 \
      || die "openssl failed to create a self-signed certificate"
  fi
  chmod 0644 "$DIR/ssl/cert.pem"
  chmod 0600 "$DIR/ssl/key.pem"
}

# The seeder is built once (Release) and then run from its output.
SEED_DLL=$SEED_PROJECT/bin/Release/net10.0/Pop3Functional.Interop.Seed.dll
seed() {
  if [[ ! -f $SEED_DLL ]] || [[ -n $(find "$SEED_PROJECT" "$REPO/src/Pop3Functional.Simulator" \
    -path '*/bin' -prune -o -path '*/obj' -prune -o -newer "$SEED_DLL" -type f -print -quit) ]]; then
    log "building the seeder"
    dotnet build "$SEED_PROJECT" -c Release -v q -nologo >"$DIR/seed-build.log" 2>&1 \
      || { tail -n 20 "$DIR/seed-build.log" >&2; die "building $SEED_PROJECT failed"; }
  fi
  dotnet "$SEED_DLL" "$@"
}

# Starts a command detached from our stdio (a daemon keeping the caller's pipes open would hang
# `... | tail`), in its own session; records "NAME PID" in DIR/pids.
spawn() { # spawn NAME LOGFILE COMMAND...
  local name=$1 logfile=$2 pid
  shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 &
  pid=$!
  echo "$name $pid" >>"$DIR/pids"
}

# Waits until 127.0.0.1:PORT answers "+OK" (plaintext) or completes a TLS handshake.
wait_port() { # wait_port NAME PORT plain|tls LOGFILE
  local i out
  for ((i = 0; i < 100; i++)); do
    if [[ $3 == plain ]]; then
      out=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2 && head -c 3 <&3 && printf 'QUIT\r\n' >&3" 2>/dev/null || true)
      [[ $out == "+OK" ]] && return 0
    else
      out=$(printf 'QUIT\r\n' | timeout 3 openssl s_client -connect "127.0.0.1:$2" -quiet 2>/dev/null | head -c 3 || true)
      [[ $out == "+OK" ]] && return 0
    fi
    sleep 0.2
  done
  tail -n 30 "$4" >&2 || true
  die "$1 did not answer on 127.0.0.1:$2 ($3)"
}

# ---------------------------------------------------------------- Dovecot

start_dovecot() {
  local d=$DIR/dovecot uid gid user
  uid=$(id -u mail); gid=$(id -g mail)
  mkdir -p "$d/run" "$d/state" "$d/home"
  : >"$d/users"
  for user in "${ACCOUNTS_DOVECOT[@]}"; do
    # {PLAIN}: the server needs the cleartext for APOP, CRAM-MD5 and SCRAM (DESIGN §9).
    printf '%s:{PLAIN}%s:%s:%s::%s/home/%s::\n' "$user" "$PASSWORD" "$uid" "$gid" "$d" "$user" >>"$d/users"
    seed maildir "$d/home/$user/Maildir" crlf
  done
  chmod 0644 "$d/users"
  chown -R mail:mail "$d/home"
  cat >"$d/dovecot.conf" <<EOF
# Written by build/scripts/pop3-servers.sh on every start.
protocols = pop3
listen = 127.0.0.1
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
instance_name = pop3functional-interop
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_uid = mail
mail_gid = mail
first_valid_uid = $uid
last_valid_uid = 0
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 apop
auth_failure_delay = 0
auth_verbose = yes
ssl = yes
ssl_cert = <$DIR/ssl/cert.pem
ssl_key = <$DIR/ssl/key.pem
pop3_lock_session = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN $d/users
}
userdb {
  driver = passwd-file
  args = $d/users
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $DOVECOT_TLS_PORT
    ssl = yes
  }
}
EOF
  /usr/sbin/dovecot -c "$d/dovecot.conf" -n >/dev/null || die "dovecot rejected $d/dovecot.conf"
  # -F: stay in the foreground, so the recorded PID is the master's.
  spawn dovecot "$d/dovecot.stderr" /usr/sbin/dovecot -F -c "$d/dovecot.conf"
  wait_port Dovecot "$DOVECOT_PORT" plain "$d/dovecot.log"
  wait_port Dovecot "$DOVECOT_TLS_PORT" tls "$d/dovecot.log"
}

# ---------------------------------------------------------------- Courier

# Courier's programs read compiled-in paths (/etc/courier, /run/courier): they run in a private
# mount namespace (unshare -m) where DIR/courier/etc and DIR/courier/run are bind-mounted there.
start_courier() {
  local d=$DIR/courier uid gid user root=$DIR/pkgroot hash md5 sha1 sha256
  uid=$(id -u mail); gid=$(id -g mail)
  mkdir -p "$d/etc" "$d/run/authdaemon" "$d/home"
  cp /etc/courier/dhparams.pem "$d/etc/dhparams.pem"
  cat "$DIR/ssl/key.pem" "$DIR/ssl/cert.pem" >"$d/etc/pop3d.pem"
  # couriertls reads it as user courier after STLS.
  chown courier "$d/etc/pop3d.pem"
  chmod 0600 "$d/etc/pop3d.pem"
  cat >"$d/etc/authdaemonrc" <<EOF
authmodulelist="authuserdb"
daemons=3
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=1
DEFAULTOPTIONS=""
LOGGEROPTS=""
EOF
  hash=$(openssl passwd -6 "$PASSWORD")
  md5=$(printf '%s\n' "$PASSWORD" | /usr/sbin/userdbpw -hmac-md5)
  sha1=$(printf '%s\n' "$PASSWORD" | /usr/sbin/userdbpw -hmac-sha1)
  sha256=$(printf '%s\n' "$PASSWORD" | /usr/sbin/userdbpw -hmac-sha256)
  : >"$d/etc/userdb"
  for user in "${ACCOUNTS_COURIER[@]}"; do
    printf '%s\tuid=%s|gid=%s|home=%s|mail=%s|systempw=%s|hmac-md5pw=%s|hmac-sha1pw=%s|hmac-sha256pw=%s\n' \
      "$user" "$uid" "$gid" "$d/home/$user" "$d/home/$user/Maildir" "$hash" "$md5" "$sha1" "$sha256" >>"$d/etc/userdb"
    # Courier keeps LF line ends on disk and adds the CRs when it serves a message.
    seed maildir "$d/home/$user/Maildir" lf
  done
  chmod 0600 "$d/etc/userdb"
  chown -R mail:mail "$d/home"
  # The environment courierpop3login and courierpop3d read (Debian's /etc/courier/pop3d and
  # pop3d-ssl, reduced to what matters here).
  cat >"$d/pop3d.env" <<EOF
PATH=/usr/sbin:/usr/bin:/sbin:/bin
SHELL=/bin/sh
POP3AUTH="PLAIN LOGIN CRAM-MD5 CRAM-SHA1 CRAM-SHA256"
POP3AUTH_TLS="PLAIN LOGIN CRAM-MD5 CRAM-SHA1 CRAM-SHA256"
POP3_PROXY=0
MAILDIRPATH=Maildir
MIME_UNICODE_MESSAGE_TYPE="message/global"
COURIERTLS=/usr/bin/couriertls
TLS_CERTFILE=/etc/courier/pop3d.pem
TLS_DHPARAMS=/etc/courier/dhparams.pem
TLS_VERIFYPEER=NONE
TLS_CACHEFILE=
EOF
  cat >"$d/run.sh" <<EOF
#!/bin/bash
# Runs inside the private mount namespace; started by pop3-servers.sh.
set -euo pipefail
mount --bind "$d/etc" /etc/courier
mount --bind "$d/run" /run/courier
cd /etc/courier && /usr/sbin/makeuserdb
set -a; . "$d/pop3d.env"; set +a
/usr/lib/courier/courier-authlib/authdaemond &
echo "courier-authdaemond \$!" >>"$DIR/pids"
POP3_STARTTLS=YES POP3_TLS_REQUIRED=0 /usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=100 \\
  -maxperip=100 -nodnslookup -noidentlookup $COURIER_PORT \\
  "$root/usr/lib/courier/courier/courierpop3login" "$root/usr/lib/courier/courier/courierpop3d" Maildir &
echo "courier-tcpd \$!" >>"$DIR/pids"
POP3_TLS=1 POP3_STARTTLS=NO POP3_TLS_REQUIRED=0 /usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=100 \\
  -maxperip=100 -nodnslookup -noidentlookup $COURIER_TLS_PORT \\
  /usr/bin/couriertls -server -tcpd \\
  "$root/usr/lib/courier/courier/courierpop3login" "$root/usr/lib/courier/courier/courierpop3d" Maildir &
echo "courier-tls-tcpd \$!" >>"$DIR/pids"
wait
EOF
  chmod 0755 "$d/run.sh"
  spawn courier-namespace "$d/courier.log" unshare -m --propagation private /bin/bash "$d/run.sh"
  wait_port Courier "$COURIER_PORT" plain "$d/courier.log"
  wait_port Courier "$COURIER_TLS_PORT" tls "$d/courier.log"
}

# ---------------------------------------------------------------- Cyrus

start_cyrus() {
  local d=$DIR/cyrus user bin=/usr/lib/cyrus/bin pop3d=$DIR/pkgroot/usr/lib/cyrus/bin/pop3d
  mkdir -p "$d/config" "$d/spool" "$d/run" "$d/socket"
  cp "$DIR/ssl/cert.pem" "$d/cert.pem"
  cp "$DIR/ssl/key.pem" "$d/key.pem"
  cat >"$d/imapd.conf" <<EOF
# Written by build/scripts/pop3-servers.sh on every start.
configdirectory: $d/config
partition-default: $d/spool
defaultpartition: default
servername: localhost
admins: cyrus
unixhierarchysep: yes
altnamespace: yes
allowplaintext: yes
allowapop: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $d/sasldb2
sasl_mech_list: PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256
tls_server_cert: $d/cert.pem
tls_server_key: $d/key.pem
lmtpsocket: $d/socket/lmtp
idlesocket: $d/socket/idle
notifysocket: $d/socket/notify
mboxname_lockpath: $d/run/lock
proc_path: $d/run/proc
duplicatesuppression: 0
autocreate_post: 1
autocreate_quota: 0
munge8bit: no
reject8bit: no
syslog_prefix: pop3functional-interop
EOF
  cat >"$d/cyrus.conf" <<EOF
# Written by build/scripts/pop3-servers.sh on every start. master does not pass -C on to its
# services (DESIGN §9): every command names the config again.
START {
  recover cmd="$bin/ctl_cyrusdb -C $d/imapd.conf -r"
}
SERVICES {
  pop3 cmd="$pop3d -C $d/imapd.conf" listen="127.0.0.1:$CYRUS_PORT" prefork=0
  pop3s cmd="$pop3d -s -C $d/imapd.conf" listen="127.0.0.1:$CYRUS_TLS_PORT" prefork=0
  pop3tls12 cmd="$pop3d -C $d/imapd-tls12.conf" listen="127.0.0.1:$CYRUS_TLS12_PORT" prefork=0
  pop3stls12 cmd="$pop3d -s -C $d/imapd-tls12.conf" listen="127.0.0.1:$CYRUS_TLS12_TLS_PORT" prefork=0
  lmtpunix cmd="$bin/lmtpd -C $d/imapd.conf" listen="$d/socket/lmtp" prefork=0
}
EVENTS {
}
DAEMON {
}
EOF
  # The same server with TLS 1.2 only, for the listeners above.
  { cat "$d/imapd.conf"; echo "tls_versions: tls1_2"; } >"$d/imapd-tls12.conf"
  rm -f "$d/sasldb2"
  for user in "${ACCOUNTS_CYRUS[@]}"; do
    # sasldb keeps the cleartext, which APOP, CRAM-MD5 and SCRAM need.
    printf '%s' "$PASSWORD" | saslpasswd2 -p -c -f "$d/sasldb2" -u localhost "$user"
  done
  chown -R cyrus:mail "$d"
  chmod 0600 "$d/key.pem" "$d/sasldb2"
  spawn cyrus-master "$d/master.log" "$bin/master" -C "$d/imapd.conf" -M "$d/cyrus.conf" -p "$d/run/master.pid" -D
  wait_port Cyrus "$CYRUS_PORT" plain "$d/master.log"
  wait_port Cyrus "$CYRUS_TLS_PORT" tls "$d/master.log"
  wait_port Cyrus "$CYRUS_TLS12_PORT" plain "$d/master.log"
  wait_port Cyrus "$CYRUS_TLS12_TLS_PORT" tls "$d/master.log"
  # Cyrus stores mail itself: delivery over LMTP (INBOXes are created by the first delivery).
  seed lmtp "$d/socket/lmtp" "${ACCOUNTS_CYRUS[@]}"
}

# ---------------------------------------------------------------- manifest, stop

write_manifest() {
  local join
  join() { local IFS=,; echo "$*"; }
  cat >"$DIR/servers.env" <<EOF
# Written by build/scripts/pop3-servers.sh start; read by tests/Pop3Functional.Interop.Tests.
PASSWORD=$PASSWORD
CERTIFICATE=$DIR/ssl/cert.pem
DOVECOT_PORT=$DOVECOT_PORT
DOVECOT_TLS_PORT=$DOVECOT_TLS_PORT
DOVECOT_ACCOUNTS=$(join "${ACCOUNTS_DOVECOT[@]}")
DOVECOT_LOG=$DIR/dovecot/dovecot.log
COURIER_PORT=$COURIER_PORT
COURIER_TLS_PORT=$COURIER_TLS_PORT
COURIER_ACCOUNTS=$(join "${ACCOUNTS_COURIER[@]}")
COURIER_LOG=$DIR/courier/courier.log
CYRUS_PORT=$CYRUS_PORT
CYRUS_TLS_PORT=$CYRUS_TLS_PORT
CYRUS_TLS12_PORT=$CYRUS_TLS12_PORT
CYRUS_TLS12_TLS_PORT=$CYRUS_TLS12_TLS_PORT
CYRUS_ACCOUNTS=$(join "${ACCOUNTS_CYRUS[@]}")
CYRUS_LOG=$DIR/cyrus/master.log
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
}

do_stop() {
  local name pid i alive
  [[ -f $DIR/pids ]] || { log "nothing recorded in $DIR/pids; nothing to stop"; return 0; }
  rm -f "$DIR/servers.env"
  # Reverse order: the Courier listeners before the namespace shell that waits for them.
  while read -r name pid; do
    [[ $pid =~ ^[0-9]+$ ]] || continue
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done < <(tac "$DIR/pids")
  for ((i = 0; i < 100; i++)); do
    alive=0
    while read -r name pid; do
      [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && alive=1
    done <"$DIR/pids"
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  while read -r name pid; do
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$DIR/pids"
  rm -f "$DIR/pids"
  log "stopped"
}

do_start() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, binds mounts, switches users)"
  [[ $(uname -s) == Linux ]] || die "Linux only"
  do_stop
  install_packages
  id mail >/dev/null && id cyrus >/dev/null && id dovenull >/dev/null \
    || die "users mail, cyrus or dovenull missing (package install incomplete?)"
  # Fresh state every start: configs and mailboxes are rewritten, the certificate is kept.
  rm -rf "$DIR/dovecot" "$DIR/courier" "$DIR/cyrus"
  chmod 0755 "$DIR"
  write_cert
  start_dovecot
  start_courier
  start_cyrus
  write_manifest
  log "running: Dovecot 127.0.0.1:$DOVECOT_PORT/$DOVECOT_TLS_PORT, Courier $COURIER_PORT/$COURIER_TLS_PORT, Cyrus $CYRUS_PORT/$CYRUS_TLS_PORT"
}

[[ $# -eq 2 && -n $2 ]] || usage
CMD=$1
DIR=$2
case $CMD in
  start)
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd -P)
    do_start
    ;;
  stop)
    [[ -d $DIR ]] || { log "no such directory $DIR; nothing to stop"; exit 0; }
    DIR=$(cd "$DIR" && pwd -P)
    do_stop
    ;;
  *) usage ;;
esac
