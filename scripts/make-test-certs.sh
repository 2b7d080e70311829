#!/usr/bin/env bash
# Regenerates the certificates and keys in test/fixtures/tls/ that the tests
# and the validate golden files use. Test material only: never deploy it.
#
#   bash scripts/make-test-certs.sh
#
# Long-lived (50 years) so the committed files stay valid; expired.pem is
# expired on purpose. Certificates that expire soon are made at test time
# (test/helpers/tls.ts), since time passes.
set -euo pipefail
cd "$(dirname "$0")/../test/fixtures/tls"
DAYS=18262
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ca() { # NAME SUBJECT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -keyout "$1.key" -out "$1.pem" -days "$DAYS" -subj "$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

leaf() { # NAME SUBJECT SAN [CA]
  local issuer=${4:-ca}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -keyout "$1.key" -out "$work/$1.csr" -subj "$2" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n%s' \
    "${3:+subjectAltName=$3}" > "$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial \
    -out "$1.pem" -days "$DAYS" -sha256 -extfile "$work/$1.ext" 2>/dev/null
}

ca ca '/CN=gatewayctl test CA'
ca other-ca '/CN=gatewayctl other test CA'
leaf example '/CN=example.com' 'DNS:example.com,DNS:*.example.com'
leaf example-next '/CN=example.com' 'DNS:example.com,DNS:*.example.com'
leaf other '/CN=other.test' 'DNS:other.test,DNS:www.other.test'
leaf localhost '/CN=localhost' 'DNS:localhost,IP:127.0.0.1'
leaf upstream '/CN=upstream.internal' 'DNS:upstream.internal'
leaf no-san '/CN=legacy.example.net' ''

# Expired: issued for 2000, through the CA tool, which takes explicit dates.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
  -keyout expired.key -out "$work/expired.csr" -subj '/CN=expired.example.com' \
  -addext subjectAltName=DNS:expired.example.com 2>/dev/null
mkdir -p "$work/db"
: > "$work/db/index.txt"
echo 1000 > "$work/db/serial"
cat > "$work/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $work/db
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
certificate = $PWD/ca.pem
private_key = $PWD/ca.key
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF
openssl ca -batch -config "$work/ca.cnf" -startdate 20000101000000Z -enddate 20010101000000Z \
  -in "$work/expired.csr" -out expired.pem -notext 2>/dev/null

# A passphrase-protected key, and files that are not what they claim.
openssl pkey -in example.key -out encrypted.key -aes256 -passout pass:secret
printf 'this is not a certificate\n' > garbage.pem
printf -- '-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n' > corrupt.pem
rm -f ./*.srl
echo "wrote $(ls | wc -l) files to test/fixtures/tls"
