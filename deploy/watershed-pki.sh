#!/bin/sh
# A small private CA for the watershed network, and a certificate per client, with openssl.
#
#   deploy/watershed-pki.sh DIR ca                      the CA: DIR/ca.key (keep it offline), DIR/ca.crt
#   deploy/watershed-pki.sh DIR server NAME [NAME...]   the broker's: DIR/server.{key,crt}; NAMEs are
#                                                       its DNS names or IP addresses (clients check them)
#   deploy/watershed-pki.sh DIR client ID               a gateway's, an ingest's or an operator's:
#                                                       DIR/ID.{key,crt}, CN = ID = its broker identity
#   deploy/watershed-pki.sh DIR revoke ID               revoke DIR/ID.crt (a stolen gateway) and
#                                                       write DIR/ca.crl, the broker's crlfile
#
# The broker takes a client's identity from its certificate's CN (deploy/mosquitto/watershed.conf:
# use_identity_as_username, use_username_as_clientid), so ID must be the gateway id (or the ingest
# id, or "operator"). Keys are EC P-256, made mode 0600. Validity: WATERSHED_PKI_DAYS (default
# 3650 for the CA, 825 for the others). A stolen gateway: revoke its certificate (see
# deploy/SECURITY.md). Nothing here is overwritten: a file that exists is an error.
set -eu

usage() { sed -n '2,12p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
dir=$1 what=$2
shift 2
mkdir -p "$dir"
umask 077

refuse_existing() {
    for f in "$@"; do
        if [ -e "$f" ]; then echo "watershed-pki: $f exists; not overwritten" >&2; exit 1; fi
    done
}

new_key_and_csr() {  # name cn
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/$1.key" -out "$dir/$1.csr" -subj "/CN=$2" 2>/dev/null
}

sign() {  # name extensions-file
    [ -f "$dir/ca.key" ] || { echo "watershed-pki: no CA in $dir: run '$0 $dir ca' first" >&2; exit 1; }
    openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/$1.crt" -days "${WATERSHED_PKI_DAYS:-825}" \
        -extfile "$2" 2>/dev/null
    rm -f "$dir/$1.csr" "$2"
    chmod 644 "$dir/$1.crt"
    echo "$dir/$1.crt, $dir/$1.key"
}

case $what in
ca)
    refuse_existing "$dir/ca.key" "$dir/ca.crt"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -days "${WATERSHED_PKI_DAYS:-3650}" \
        -subj "/CN=watershed CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 644 "$dir/ca.crt"
    echo "$dir/ca.crt (give to every client and the broker), $dir/ca.key (keep offline)"
    ;;
server)
    [ $# -ge 1 ] || usage
    refuse_existing "$dir/server.key" "$dir/server.crt"
    names=""
    for n in "$@"; do
        if printf '%s' "$n" | grep -Eq '^([0-9]+\.){3}[0-9]+$|:'; then
            names="$names${names:+,}IP:$n"
        else
            names="$names${names:+,}DNS:$n"
        fi
    done
    new_key_and_csr server "$1"
    ext=$(mktemp)
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\n' \
        "$names" > "$ext"
    sign server "$ext"
    ;;
client)
    [ $# -eq 1 ] || usage
    id=$1
    # An identifier (docs/contracts.md), and not a topic level the network itself uses.
    if ! printf '%s' "$id" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'; then
        echo "watershed-pki: '$id' is not an identifier (1-32 of A-Z a-z 0-9 _ . -)" >&2; exit 2
    fi
    case $id in
    ingest|deadletter) echo "watershed-pki: '$id' is reserved (a topic level of the network)" >&2; exit 2 ;;
    esac
    refuse_existing "$dir/$id.key" "$dir/$id.crt"
    new_key_and_csr "$id" "$id"
    ext=$(mktemp)
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\n' > "$ext"
    sign "$id" "$ext"
    ;;
revoke)
    [ $# -eq 1 ] || usage
    [ -f "$dir/$1.crt" ] || { echo "watershed-pki: no $dir/$1.crt" >&2; exit 1; }
    # openssl ca keeps the revoked certificates in DIR/index.txt; the CRL lists them all.
    touch "$dir/index.txt"
    [ -f "$dir/crlnumber" ] || echo 01 > "$dir/crlnumber"
    conf=$(mktemp)
    printf '[ca]\ndefault_ca=w\n[w]\ndatabase=%s\ncrlnumber=%s\ncertificate=%s\nprivate_key=%s\ndefault_md=sha256\ndefault_crl_days=%s\n' \
        "$dir/index.txt" "$dir/crlnumber" "$dir/ca.crt" "$dir/ca.key" "${WATERSHED_PKI_CRL_DAYS:-3650}" > "$conf"
    openssl ca -config "$conf" -revoke "$dir/$1.crt" 2>/dev/null
    openssl ca -config "$conf" -gencrl -out "$dir/ca.crl" 2>/dev/null
    rm -f "$conf"
    chmod 644 "$dir/ca.crl"
    echo "$dir/ca.crl: copy to the broker's crlfile and restart it"
    ;;
*) usage ;;
esac
