#!/usr/bin/env bash
# Computes every vector's X-UE-Signature with openssl, independently of the
# code under test: the hex HMAC of the raw body keyed with the webhook key,
# SHA-1 as UserEcho documents (SHA-256 accepted too). Also writes ids.txt,
# each event vector's expected CloudEvent id (<hook>:<data.id>:<created>)
# worked out here with jq.
#
# Folders: signed/ is checked by a source with a secret, unsigned/ by one
# without.
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
received="2026-11-20T10:15:30Z"

sign() { # sign ALGORITHM KEY FILE
  openssl dgst "-$1" -hmac "$2" -r < "$3" | cut -d' ' -f1
}
request() { # request DIR HEADERVALUE [METHOD]
  local method=${3:-POST} hdr=""
  if [ -n "$2" ]; then hdr=", \"headers\": {\"X-UE-Signature\": \"$2\", \"Content-Type\": \"application/json\"}"; fi
  printf '{"method": "%s", "path": "/webhooks/userecho", "received_at": "%s"%s}\n' "$method" "$received" "$hdr" > "$1/request.json"
}
reject() { printf '{"reason": "%s"}\n' "$2" > "$1/want.json"; }
expect_id() { echo "$1 $(jq -r '"\(.hook):\(.data.id):\(.created)"' "$1/body")" >> ids.txt; }
: > ids.txt

for d in topic_created topic_accepted topic_satisfaction_changed comment_created comment_accepted comment_deleted unknown_hook; do
  request signed/$d "$(sign sha1 "$secret" signed/$d/body)"; expect_id signed/$d
done
request signed/topic_created_sha256 "$(sign sha256 "$secret" signed/topic_created_sha256/body)"; expect_id signed/topic_created_sha256
request signed/forged "$(sign sha1 "not-the-key" signed/forged/body)"; reject signed/forged signature_mismatch
full=$(sign sha1 "$secret" signed/truncated/body)
request signed/truncated "${full:0:20}"; reject signed/truncated malformed_signature
# The first 40 characters of an HMAC-SHA256 look like an HMAC-SHA1: checked as one, they do not match.
full=$(sign sha256 "$secret" signed/sha256_cut_to_40/body)
request signed/sha256_cut_to_40 "${full:0:40}"; reject signed/sha256_cut_to_40 signature_mismatch
request signed/sha512 "$(sign sha512 "$secret" signed/sha512/body)"; reject signed/sha512 malformed_signature
request signed/missing_header ""; reject signed/missing_header missing_signature
request signed/tampered "$(sign sha1 "$secret" signed/topic_created/body)"; reject signed/tampered signature_mismatch
request signed/not_hex "$(sign sha1 "$secret" signed/not_hex/body | tr 0-9 g-p)"; reject signed/not_hex malformed_signature
request signed/get_method "$(sign sha1 "$secret" signed/get_method/body)" GET; reject signed/get_method method_not_allowed

# Without a secret nothing is checked: a request passes signed or not.
request unsigned/topic_created ""; expect_id unsigned/topic_created
request unsigned/comment_created_with_bogus_signature "$(printf '%040d' 0)"; expect_id unsigned/comment_created_with_bogus_signature
request unsigned/get_method "" GET; reject unsigned/get_method method_not_allowed
