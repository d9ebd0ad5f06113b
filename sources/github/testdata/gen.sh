#!/usr/bin/env bash
# Computes every vector's X-Hub-Signature-256 with openssl, independently of
# the code under test: sha256=<hex HMAC-SHA256 of the raw body> keyed with
# the hook's secret (the text in ./secret). GitHub's own documented test
# value is checked first, so this script is checked against GitHub too.
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
received="2026-11-20T10:15:30Z"

sign() { # sign SECRET FILE [ALG]
  openssl dgst "-${3:-sha256}" -hmac "$1" -r < "$2" | cut -d' ' -f1
}
doc=$(printf 'Hello, World!' | openssl dgst -sha256 -hmac "It's a Secret to Everybody" -r | cut -d' ' -f1)
[ "$doc" = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17" ] || { echo "openssl disagrees with GitHub's documented value: $doc" >&2; exit 1; }

delivery() { # delivery NAME: a GUID of its own for each vector
  local h
  h=$(printf '%s' "$1" | sha256sum | cut -c1-32)
  printf '%s-%s-%s-%s-%s' "${h:0:8}" "${h:8:4}" "${h:12:4}" "${h:16:4}" "${h:20:12}"
}
request() { # request DIR EVENT HEADERS-JSON [CONTENT-TYPE]
  printf '{"method": "POST", "path": "/webhooks/github", "received_at": "%s", "headers": {"Content-Type": "%s", "X-GitHub-Event": "%s", "X-GitHub-Delivery": "%s"%s}}\n' \
    "$received" "${4:-application/json}" "$2" "$(delivery "$1")" "${3:+, $3}" > "$1/request.json"
}
sig() { printf '"X-Hub-Signature-256": "sha256=%s"' "$1"; }

for v in issues_opened pull_request_closed push ping; do
  case $v in
    issues_opened) event=issues ;;
    pull_request_closed) event=pull_request ;;
    *) event=$v ;;
  esac
  request $v $event "$(sig "$(sign "$secret" $v/body)")"
done
request form_encoded issues "$(sig "$(sign "$secret" form_encoded/body)")" application/x-www-form-urlencoded
request missing_signature issues ""
request sha1_only issues "\"X-Hub-Signature\": \"sha1=$(sign "$secret" sha1_only/body sha1)\""
request malformed issues "\"X-Hub-Signature-256\": \"$(sign "$secret" malformed/body)\""
request wrong_key issues "$(sig "$(sign "another-hook-secret" wrong_key/body)")"
request tampered issues "$(sig "$(sign "$secret" issues_opened/body)")"
full=$(sign "$secret" truncated/body)
request truncated issues "$(sig "${full:0:40}")"
upper=$(sign "$secret" uppercase_hex/body | tr a-f A-F)
request uppercase_hex issues "$(sig "$upper")"
