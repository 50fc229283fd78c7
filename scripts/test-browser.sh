#!/usr/bin/env bash
# The tracker in a real browser: Debian's Chromium, driven by playwright-core,
# against a Headcount built from this tree and a local test website.
#
#   scripts/test-browser.sh [TEST_FILE...]   (default: tests/browser/*.test.mjs)
#
# 1. installs chromium with apt if /usr/bin/chromium is missing, and the npm
#    packages of tests/browser (npm ci: versions pinned by package-lock.json);
# 2. builds the headcount binary and starts it with a temporary config:
#    a fresh database in the ClickHouse at $HEADCOUNT_TEST_CLICKHOUSE_URL
#    (default http://127.0.0.1:28123; if nothing answers there, a fresh
#    private one is started under var/browser-clickhouse on free ports and
#    stopped afterwards),
#    a temporary salt key, batch_interval_ms = 100, [[sites]] 127.0.0.1;
# 3. serves the test site (tests/browser/site.mjs) on another port;
# 4. runs tests/browser/*.test.mjs with node's test runner;
# 5. stops everything it started and exits with the tests' status.
#
# Screenshots and the logs of Headcount and the site: test-artifacts/browser/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
artifacts=$root/test-artifacts/browser
ch_url=${HEADCOUNT_TEST_CLICKHOUSE_URL:-http://127.0.0.1:28123}
sudo=
[[ $(id -u) -eq 0 ]] || sudo=sudo

if [[ ! -x /usr/bin/chromium ]]; then
    echo "browser tests: installing Debian's chromium"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo build --bin headcount
# Where cargo put it (CARGO_TARGET_DIR may move target/).
headcount_bin=$(cargo metadata --format-version 1 --no-deps |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')/debug/headcount

tmp=$(mktemp -d)
pids=()
own_ch=
db=
status=1
cleanup() {
    # SIGTERM: Headcount flushes its queue and exits; the site just exits.
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ $status -eq 0 && -n $db ]]; then
        curl -sf "$ch_url/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null || true
    elif [[ -n $db ]]; then
        echo "browser tests: kept database $db in $ch_url; logs in $artifacts" >&2
    fi
    [[ -n $own_ch ]] && scripts/clickhouse.sh stop var/browser-clickhouse "$ch_http" "$ch_tcp" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports, found together so they differ: Headcount, the test
# site, and (if needed) a private ClickHouse's HTTP and TCP ports.
read -r hc_port site_port ch_http ch_tcp < <(node -e '
  const net = require("net");
  const servers = [0, 1, 2, 3].map(() => net.createServer());
  Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')
if ! curl -sf "$ch_url/ping" >/dev/null 2>&1; then
    echo "browser tests: no ClickHouse at $ch_url; starting a private one"
    own_ch=1
    # Throw-away: a server left over from an interrupted run, and its data, go.
    [[ -f var/browser-clickhouse/ports ]] && read -r old_http old_tcp <var/browser-clickhouse/ports &&
        scripts/clickhouse.sh stop var/browser-clickhouse "$old_http" "$old_tcp" >/dev/null 2>&1
    rm -rf var/browser-clickhouse
    mkdir -p var/browser-clickhouse
    echo "$ch_http $ch_tcp" >var/browser-clickhouse/ports
    scripts/clickhouse.sh start var/browser-clickhouse "$ch_http" "$ch_tcp"
    ch_url=http://127.0.0.1:$ch_http
fi

db=hc_browser_$(date +%s)_$RANDOM
headcount=http://127.0.0.1:$hc_port
site=http://127.0.0.1:$site_port

cat > "$tmp/headcount.toml" <<TOML
[server]
listen = "127.0.0.1:$hc_port"

[clickhouse]
url = "$ch_url"
database = "$db"
batch_interval_ms = 100

[privacy]
salt_key_file = "$tmp/salt.key"

[log]
level = "info,headcount=debug"

# The test site is served from 127.0.0.1, so that is its domain.
[[sites]]
domain = "127.0.0.1"
TOML

mkdir -p "$artifacts"
rm -f "$artifacts"/*.png
# Headcount reads HEADCOUNT_* variables as config overrides: keep ours
# (HEADCOUNT_TEST_CLICKHOUSE_URL, ...) away from it.
unset_vars=()
for v in $(compgen -e | grep '^HEADCOUNT_' || true); do unset_vars+=(-u "$v"); done
env "${unset_vars[@]}" "$headcount_bin" --config "$tmp/headcount.toml" serve >"$artifacts/headcount.log" 2>&1 &
pids+=($!)
node tests/browser/site.mjs "$site_port" "$headcount" >"$artifacts/site.log" 2>&1 &
pids+=($!)

ready=
for _ in $(seq 1 300); do
    kill -0 "${pids[0]}" 2>/dev/null || break
    if curl -sf "$headcount/readyz" >/dev/null 2>&1 && curl -sf "$site/t/ready/" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ -z $ready ]]; then
    echo "browser tests: Headcount or the test site did not start; see $artifacts/*.log" >&2
    tail -n 20 "$artifacts/headcount.log" >&2 || true
    exit 1
fi
echo "browser tests: Headcount $headcount, site $site, ClickHouse $ch_url database $db"

export HEADCOUNT_URL=$headcount SITE_URL=$site CH_URL=$ch_url CH_DATABASE=$db ARTIFACTS_DIR=$artifacts HEADCOUNT_BIN=$headcount_bin
status=0
files=("$@")
((${#files[@]})) || files=(tests/browser/*.test.mjs)
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}" || status=$?
exit $status
