#!/usr/bin/env bash
# Install the IP geolocation databases Headcount reads, from the npm registry,
# pinned and checksummed, into var/geo/ (or DEST):
#
#   country.mmdb   @ip-location-db/geo-whois-asn-country-mmdb  (IPv4+IPv6)
#   asn.csv        @ip-location-db/asn  (asn-ipv4.csv + asn-ipv6.csv)
#   LICENSES/      the packages' license and attribution files
#   VERSION        what is installed (makes re-runs a no-op)
#
# Data: ip-location-db (https://github.com/sapics/ip-location-db), CC BY 4.0
# (RouteViews, DB-IP, NRO/RIRs) — attribution is required; see README.md.
#
# Usage: scripts/install-geo.sh [DEST]        (default: var/geo)
#   HEADCOUNT_GEO_VERSION=…   another ip-location-db release (checksums are
#                             then taken from the registry, not pinned here)
#   --force                   reinstall even when VERSION matches
#
# Idempotent and offline-friendly: when DEST already holds this version it
# exits at once without touching the network; downloaded tarballs are kept
# in var/geo-npm/ and reused. Files are replaced by rename, so a running
# Headcount (which polls the files) never reads half a database.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

force=0
args=()
for a in "$@"; do
    case "$a" in
        --force) force=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) args+=("$a") ;;
    esac
done
DEST=${args[0]:-var/geo}
CACHE=var/geo-npm

PINNED_VERSION=2.3.2026061719
VERSION=${HEADCOUNT_GEO_VERSION:-$PINNED_VERSION}
COUNTRY_PKG=@ip-location-db/geo-whois-asn-country-mmdb
ASN_PKG=@ip-location-db/asn
# npm `dist.integrity` of the pinned version (sha512, base64).
declare -A INTEGRITY=(
    [$COUNTRY_PKG]="sha512-xemBDNQl4mCYDuVbqe3jKGKsVDykZGkfvebhtOh/3VGLadq8vsp7t7ontpMUt3hH7sAGT0eLDyJ99SV+0waxZg=="
    [$ASN_PKG]="sha512-PpqYi7wyEyWwunXBtl+y3Vi403SvNywotWwvmiYCOUtE0SVol/Sf492Ee+eErEznmGapxEQB2SAfrpXuZ9a+vQ=="
)

log() { echo "install-geo: $*" >&2; }

stamp="ip-location-db $VERSION"
if ((!force)) && [[ -f $DEST/VERSION && -s $DEST/country.mmdb && -s $DEST/asn.csv ]] \
    && [[ $(cat "$DEST/VERSION") == "$stamp" ]]; then
    log "$DEST is up to date ($stamp)"
    exit 0
fi

# npm's tarball name for a scoped package: @scope/name@v -> scope-name-v.tgz
tarball() { local p=${1#@}; echo "$CACHE/${p//\//-}-$VERSION.tgz"; }

sri() { # sha512 subresource-integrity string of a file
    node -e 'const c=require("crypto"),f=require("fs");process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$1"
}

fetch() { # fetch (or reuse) the tarball of package $1 and verify it
    local pkg=$1 tgz want attempt
    tgz=$(tarball "$pkg")
    if [[ $VERSION == "$PINNED_VERSION" ]]; then
        want=${INTEGRITY[$pkg]}
    else
        want=$(npm view --silent "$pkg@$VERSION" dist.integrity)
    fi
    for attempt in 1 2; do
        if [[ ! -s $tgz ]]; then
            command -v npm >/dev/null || { log "npm is needed to download $pkg (apt-get install npm)"; exit 1; }
            log "downloading $pkg@$VERSION"
            mkdir -p "$CACHE"
            (cd "$CACHE" && npm pack --silent --loglevel=error "$pkg@$VERSION" >/dev/null)
            [[ -s $tgz ]] || { log "npm pack did not produce $tgz"; exit 1; }
        fi
        [[ $(sri "$tgz") == "$want" ]] && return 0
        log "checksum mismatch for $tgz (expected $want); deleting it"
        rm -f "$tgz"
    done
    exit 1
}

command -v node >/dev/null || { log "node is needed (apt-get install nodejs npm)"; exit 1; }
fetch "$COUNTRY_PKG"
fetch "$ASN_PKG"

mkdir -p "$DEST"
work=$(mktemp -d "$DEST/.install.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/country" "$work/asn" "$work/LICENSES"
tar -xzf "$(tarball "$COUNTRY_PKG")" -C "$work/country"
tar -xzf "$(tarball "$ASN_PKG")" -C "$work/asn"

c=$work/country/package a=$work/asn/package
[[ -s $c/geo-whois-asn-country.mmdb && -s $a/asn-ipv4.csv && -s $a/asn-ipv6.csv ]] \
    || { log "unexpected package layout"; exit 1; }
cp "$c/geo-whois-asn-country.mmdb" "$work/country.mmdb"
cat "$a/asn-ipv4.csv" "$a/asn-ipv6.csv" > "$work/asn.csv"
for f in "$c"/*LICENSE* "$c/README.md"; do [[ -f $f ]] && cp "$f" "$work/LICENSES/country-$(basename "$f")"; done
for f in "$a"/*LICENSE* "$a/MODIFICATIONS" "$a/README.md"; do [[ -f $f ]] && cp "$f" "$work/LICENSES/asn-$(basename "$f")"; done
cat > "$work/LICENSES/ATTRIBUTION" <<EOF
IP geolocation by ip-location-db (https://github.com/sapics/ip-location-db), CC BY 4.0:
  country.mmdb  $COUNTRY_PKG@$VERSION  (GeoFeed, NRO/RIR whois and ASN data)
  asn.csv       $ASN_PKG@$VERSION  (RouteViews, NRO/RIRs, DB-IP IP to ASN Lite)
License: https://creativecommons.org/licenses/by/4.0/
EOF

# Rename into place: the running server sees the old file or the new one.
rm -rf "$DEST/LICENSES"
mv "$work/LICENSES" "$DEST/LICENSES"
mv -f "$work/country.mmdb" "$DEST/country.mmdb"
mv -f "$work/asn.csv" "$DEST/asn.csv"
echo "$stamp" > "$work/VERSION" && mv -f "$work/VERSION" "$DEST/VERSION"
log "installed $stamp into $DEST (country.mmdb, asn.csv)"
