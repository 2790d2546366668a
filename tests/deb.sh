#!/usr/bin/env bash
# The Debian packages end to end: builds `remod` and `remo` with cargo-deb,
# lints them (lintian: no errors), installs them, checks every file is in
# its Debian place (man pages render, completions parse, `a2enconf remo`
# works), runs the installed remod the way remod.socket/remod.service do
# (systemd-socket-activate, the unit's ExecStart and Environment) behind a
# real nginx that includes the installed snippet, logs in with `remo`,
# then purges both packages and checks nothing of them is left.
#
#   tests/deb.sh            (as root; tests/run calls it after the cargo tests)
#
# Installs what it needs (Debian packages, cargo-deb) and fails naming what
# it could not install; never skips. Refuses to run where remod is already
# installed or /var/lib/remo or /etc/remo exist outside the package: purge
# would remove a real server's keys.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
fail() {
  echo "deb.sh: FAILED: $*" >&2
  echo "deb.sh: $passed passed, 1 failed"
  exit 1
}
ok() {
  passed=$((passed + 1))
  echo "deb.sh: ok: $*" >&2
}
# check DESCRIPTION COMMAND...: runs COMMAND, fails the test if it fails.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what ($*)"; fi
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (dpkg -i, /var/lib/remo)"

# binary → Debian package providing it
needs=(
  "/usr/bin/lintian lintian"
  "/usr/bin/systemd-socket-activate systemd"
  "/usr/bin/deb-systemd-helper init-system-helpers"
  "/usr/sbin/nginx nginx-light"
  "/usr/sbin/a2enconf apache2"
  "/usr/bin/man man-db"
  "/usr/bin/dpkg-shlibdeps dpkg-dev"
  "/usr/bin/objcopy binutils"
)
missing=()
for n in "${needs[@]}"; do
  read -r bin pkg <<<"$n"
  [ -e "$bin" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deb.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || fail "apt-get update"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    fail "could not install the Debian package(s): ${missing[*]}"
  for svc in nginx apache2; do
    systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
  done
  for n in "${needs[@]}"; do
    read -r bin pkg <<<"$n"
    [ -e "$bin" ] || fail "$bin still missing after installing $pkg"
  done
fi
if ! cargo deb --version >/dev/null 2>&1; then
  echo "deb.sh: installing cargo-deb" >&2
  cargo install --locked cargo-deb >&2 || fail "could not install cargo-deb (crates.io)"
fi

for p in remod remo; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "the Debian package $p is installed here; purge it first (dpkg --purge $p)"
  fi
done
for d in /var/lib/remo /etc/remo; do
  [ ! -e "$d" ] || fail "$d exists without the package: not touching a real server's data"
done

scratch=$(mktemp -d /tmp/remo-deb.XXXXXX)
sock=/run/remo-test.sock
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # Leave no package behind after a failure either.
  dpkg --purge remod remo >/dev/null 2>&1 || true
  rm -f "$sock"
  rm -rf "$scratch"
}
trap cleanup EXIT

# --- build -----------------------------------------------------------------
echo "deb.sh: cargo run --example gen-assets; cargo deb; cargo deb --variant client" >&2
cargo run -q --example gen-assets >&2 || fail "examples/gen-assets.rs"
server_deb=$(cargo deb --output "$scratch/" | tail -n 1) || fail "cargo deb"
client_deb=$(cargo deb --variant client --output "$scratch/" | tail -n 1) ||
  fail "cargo deb --variant client"
check "built $server_deb" test -f "$server_deb"
check "built $client_deb" test -f "$client_deb"
check "server package is remod" test "$(dpkg-deb -f "$server_deb" Package)" = remod
check "client package is remo" test "$(dpkg-deb -f "$client_deb" Package)" = remo

# --- lintian -----------------------------------------------------------------
lint=$(lintian --allow-root --tag-display-limit 0 "$server_deb" "$client_deb" 2>&1) || true
echo "deb.sh: lintian:" >&2
if [ -n "$lint" ]; then printf '%s\n' "$lint" | sed 's/^/  /' >&2; else echo "  (nothing)" >&2; fi
if printf '%s\n' "$lint" | grep -q '^E: '; then fail "lintian reports errors (above)"; fi
ok "lintian: no errors"

# --- install -----------------------------------------------------------------
dpkg -i "$server_deb" "$client_deb" >"$scratch/dpkg-i.log" 2>&1 || { cat "$scratch/dpkg-i.log" >&2; fail "dpkg -i"; }
cat "$scratch/dpkg-i.log" >&2
# postinst's `remod init` prints the new key's fingerprint.
server_fp=$(sed -n 's/^server fingerprint: //p' "$scratch/dpkg-i.log")
[ -n "$server_fp" ] || fail "postinst printed no server fingerprint (remod init)"
files_remod=$(dpkg -L remod)
files_remo=$(dpkg -L remo)

for f in /usr/bin/remod /usr/bin/remo; do
  check "$f executable" test -x "$f"
done
check "remod --version" bash -c '/usr/bin/remod --version | grep -qx "remod [0-9.]*"'
check "remo --version" bash -c '/usr/bin/remo --version | grep -qx "remo [0-9.]*"'
for f in /lib/systemd/system/remod.service /lib/systemd/system/remod.socket \
  /etc/nginx/snippets/remo.conf /etc/apache2/conf-available/remo.conf \
  /usr/share/bash-completion/completions/remo /usr/share/bash-completion/completions/remod \
  /usr/share/zsh/vendor-completions/_remo /usr/share/zsh/vendor-completions/_remod \
  /usr/share/fish/vendor_completions.d/remo.fish /usr/share/fish/vendor_completions.d/remod.fish \
  /usr/share/doc/remod/copyright /usr/share/doc/remo/copyright; do
  check "$f installed" test -s "$f"
done
check "/etc/remo/remo.toml is a conffile" \
  bash -c "dpkg-query -W -f='\${Conffiles}' remod | grep -q '^ /etc/remo/remo.toml '"
check "no placeholder left in the installed units and snippets" \
  bash -c '! grep -n "@[A-Z_]*@" /lib/systemd/system/remod.* /etc/nginx/snippets/remo.conf /etc/apache2/conf-available/remo.conf'
for page in man1/remo.1 man1/remo-exec.1 man8/remod.8 man8/remod-serve.8 man8/remod-user-add.8 man5/remo.toml.5; do
  f=/usr/share/man/$page.gz
  check "$f installed" test -s "$f"
  out=$(MANWIDTH=80 man --warnings -l "$f" 2>"$scratch/man.err") || fail "man -l $f"
  [ ! -s "$scratch/man.err" ] || fail "man -l $f warns: $(cat "$scratch/man.err")"
  printf '%s\n' "$out" | grep -q '^NAME' || fail "man -l $f: no NAME section"
  ok "man -l $f renders"
done
check "remo(1) explains HOST" bash -c 'MANWIDTH=1000 man -l /usr/share/man/man1/remo.1.gz 2>/dev/null | tr -s " " | grep -q "command name is HOST"'
for c in remo remod; do
  f=/usr/share/bash-completion/completions/$c
  check "bash -n $f" bash -n "$f"
  check "$f completes $c" bash -c "source $f && complete -p $c >/dev/null"
done

# Data directory made by postinst: root only, with a server key.
check "/var/lib/remo is 0700 root" test "$(stat -c '%a %U' /var/lib/remo)" = "700 root"
check "postinst ran remod init" test -s /var/lib/remo/server.key -a -s /var/lib/remo/users.db
check "remod.socket enabled (Debian default)" test -L /etc/systemd/system/sockets.target.wants/remod.socket
check "remod.service not enabled itself" test ! -e /etc/systemd/system/multi-user.target.wants/remod.service

check "a2enconf remo" a2enconf -q remo
check "a2enconf linked the conf" test -L /etc/apache2/conf-enabled/remo.conf
check "a2disconf remo" a2disconf -q remo
check "a2disconf removed the link" test ! -e /etc/apache2/conf-enabled/remo.conf

# --- run it as the units do --------------------------------------------------
unit=/lib/systemd/system/remod.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "no ExecStart= in $unit"
grep -q "^ListenStream=/run/remo/remod.sock$" /lib/systemd/system/remod.socket ||
  fail "remod.socket does not listen on /run/remo/remod.sock"
# remod loads REMO_CONFIG with the instance, so `remo info` working below
# also shows the packaged, all-commented remo.toml parses.
grep -q "^Environment=REMO_CONFIG=/etc/remo/remo.toml$" "$unit" || fail "$unit does not set REMO_CONFIG"
envs=()
while IFS= read -r e; do envs+=(-E "$e"); done < <(sed -n 's/^Environment=//p' "$unit")
# Its control socket in the scratch directory, not /run/remod.
envs+=(-E "REMO_CONTROL=$scratch/control.sock")
rm -f "$sock"
read -r -a argv <<<"$exec_start"
systemd-socket-activate -l "$sock" "${envs[@]}" "${argv[@]}" >"$scratch/remod.log" 2>&1 &
pids+=($!)

# A free port for nginx.
port=
for p in $(seq 18480 18580); do
  if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port in 18480-18580"
ng=$scratch/nginx
mkdir -p "$ng"/tmp/{body,fastcgi,proxy,uwsgi,scgi}
cp /etc/nginx/fastcgi_params "$ng/"
# The installed snippet, only its socket path changed to the test's.
sed "s|unix:/run/remo/remod.sock|unix:$sock|" /etc/nginx/snippets/remo.conf >"$ng/remo.conf"
grep -q "fastcgi_pass unix:$sock;" "$ng/remo.conf" || fail "the snippet has no fastcgi_pass unix:/run/remo/remod.sock"
cat >"$ng/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/error.log info;
events { worker_connections 64; }
http {
  access_log $ng/access.log;
  client_body_temp_path $ng/tmp/body;
  fastcgi_temp_path $ng/tmp/fastcgi;
  proxy_temp_path $ng/tmp/proxy;
  uwsgi_temp_path $ng/tmp/uwsgi;
  scgi_temp_path $ng/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    server_name localhost;
    include $ng/remo.conf;
  }
}
EOF
/usr/sbin/nginx -p "$ng" -c "$ng/nginx.conf" -g 'daemon off;' >"$ng/stderr.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "nginx does not listen: $(cat "$ng/error.log" "$ng/stderr.log")"

export HOME=$scratch/home
mkdir -p "$HOME"
check "remo keygen" remo keygen --no-passphrase -o "$scratch/tester.key"
check "remod user add" remod user add --db /var/lib/remo/users.db tester --key "$scratch/tester.key.pub" --allow admin
remo_() { remo --server "http://127.0.0.1:$port/remo" -l tester -i "$scratch/tester.key" "$@"; }
diag() { echo "--- remod:"; cat "$scratch/remod.log"; echo "--- nginx:"; cat "$ng/error.log"; } >&2
info=$(remo_ info 2>&1) || { diag; fail "remo info: $info"; }
echo "$info" | sed 's/^/  /' >&2
check "remo info through nginx and the socket-activated remod: the postinst's key" \
  grep -q "^fingerprint: *$server_fp$" <<<"$info"
out=$(remo_ exec sh -c 'echo "deb-$(id -u)"' 2>&1) || { diag; fail "remo exec: $out"; }
check "remo exec ran as root" test "$out" = "deb-0"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

# --- purge -------------------------------------------------------------------
dpkg --purge remod remo >&2 || fail "dpkg --purge remod remo"
for p in remod remo; do
  check "$p no longer known to dpkg" bash -c "! dpkg-query -W -f='\${Status}' $p 2>/dev/null | grep -q 'installed\|config-files'"
done
left=()
while IFS= read -r f; do
  [ -n "$f" ] || continue
  [ -d "$f" ] && continue # shared directories, /lib → usr/lib
  if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done <<<"$files_remod"$'\n'"$files_remo"
[ ${#left[@]} -eq 0 ] || fail "files of the packages left after purge: ${left[*]}"
ok "no file of the packages left"
check "no /var/lib/remo" test ! -e /var/lib/remo
check "no /etc/remo" test ! -e /etc/remo
leftover_units=$(find /etc/systemd /lib/systemd/system /var/lib/systemd -name 'remod*' 2>/dev/null)
[ -z "$leftover_units" ] || fail "units or their state left: $leftover_units"
ok "no unit, link or deb-systemd-helper state left"

echo "deb.sh: $passed passed, 0 failed"
