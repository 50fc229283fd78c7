# Shared by the load scripts (benches/run-baselines.sh, benches/soak.sh);
# source it from the repository root after defining say().

# hc_config FILE HC_PORT CH_HTTP DB
#   A `make run`-like configuration for a Headcount under load: its own
#   ClickHouse database, ip_mode "hash", trusted_proxies ["127.0.0.1/32"]
#   (headcount-load sends each visitor's address in X-Forwarded-For), the
#   geo databases of var/geo when installed (scripts/install-geo.sh), the
#   rate limiter exempting 127.0.0.1 (the load comes from here: measure the
#   collector, not its per-client limit), and the sites example.com,
#   example.org, example.net.
hc_config() {
    local file=$1 port=$2 ch_http=$3 db=$4 geo_country="" geo_asn=""
    [[ -f var/geo/country.mmdb ]] && geo_country="$PWD/var/geo/country.mmdb"
    [[ -f var/geo/asn.csv ]] && geo_asn="$PWD/var/geo/asn.csv"
    cat >"$file" <<EOF
[server]
listen = "127.0.0.1:$port"

[clickhouse]
url = "http://127.0.0.1:$ch_http"
database = "$db"

[privacy]
ip_mode = "hash"
trusted_proxies = ["127.0.0.1/32"]
salt_key_file = "salt.key"

[geo]
country_db = "$geo_country"
asn_db = "$geo_asn"

[limits]
rate_limit_exempt = ["127.0.0.1/32"]

[log]
level = "warn"

[[sites]]
domain = "example.com"

[[sites]]
domain = "example.org"

[[sites]]
domain = "example.net"
EOF
}

# hc_wait_ready PID PORT LOG
#   Wait up to 30 s for /readyz; fail with the log if the process exits or
#   never gets ready.
hc_wait_ready() {
    local pid=$1 port=$2 log=$3
    for _ in $(seq 150); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { say "headcount exited:"; cat "$log" >&2; return 1; }
        sleep 0.2
    done
    say "headcount not ready after 30 s:"
    cat "$log" >&2
    return 1
}
