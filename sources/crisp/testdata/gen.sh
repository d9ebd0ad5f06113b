#!/usr/bin/env bash
# Computes every vector's credentials with openssl, independently of the code
# under test. Plugin hooks: X-Crisp-Signature = hex HMAC-SHA256, keyed with
# the secret, of "[<X-Crisp-Request-Timestamp>;<body>]"; Crisp signs
# JSON.stringify of the payload, so a pretty body is signed in compact form.
# Website hooks: the key query parameter. Also writes ids.txt, each event
# vector's expected CloudEvent id worked out here with jq and sha256sum.
#
# Folders: plugin/ is checked by a source with only `secret`, website/ by
# one with only `key`, both/ by one with both.
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
key=$(cat key)
received="2026-11-20T10:15:30Z"
t=$(date -u -d "$received" +%s)
ms="${t}000"

sign() { # sign ALGORITHM SECRET TIMESTAMP FILE
  { printf '[%s;' "$3"; cat "$4"; printf ']'; } | openssl dgst "-$1" -hmac "$2" -r | cut -d' ' -f1
}
# request DIR [ts=..] [sig=..] [key=..] [method=..]
request() {
  local dir=$1 ts="" sig="" k="" method=POST parts=()
  shift
  for a in "$@"; do
    case $a in
      ts=*) ts=${a#ts=} ;; sig=*) sig=${a#sig=} ;; key=*) k=${a#key=} ;; method=*) method=${a#method=} ;;
    esac
  done
  local hdr="\"Content-Type\": \"application/json\""
  [ -n "$ts" ] && hdr="$hdr, \"X-Crisp-Request-Timestamp\": \"$ts\""
  [ -n "$sig" ] && hdr="$hdr, \"X-Crisp-Signature\": \"$sig\""
  local query=""
  [ -n "$k" ] && query=", \"query\": {\"key\": [\"$k\"]}"
  printf '{"method": "%s", "path": "/webhooks/crisp", "received_at": "%s"%s, "headers": {%s}}\n' "$method" "$received" "$query" "$hdr" > "$dir/request.json"
}
reject() { printf '{"reason": "%s"}\n' "$2" > "$1/want.json"; }
expect_id() { # expect_id DIR: the documented id rule
  local ev fp
  ev=$(jq -r '.event' "$1/body")
  fp=$(jq -r '.data.fingerprint // empty' "$1/body")
  if [[ $ev == message:* && $ev != message:updated && -n $fp ]]; then
    echo "$1 $(jq -r '"\(.website_id):\(.data.session_id):\(.event):\(.data.fingerprint)"' "$1/body")" >> ids.txt
  else
    echo "$1 $(sha256sum < "$1/body" | cut -d' ' -f1)" >> ids.txt
  fi
}
: > ids.txt
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT

# --- plugin hooks (secret only)
for d in message_send message_received message_send_file message_updated message_acknowledge_read session_set_email people_profile_created unknown_event; do
  request plugin/$d ts=$ms sig="$(sign sha256 "$secret" $ms plugin/$d/body)"; expect_id plugin/$d
done
jq -c . plugin/message_send_pretty/body | tr -d '\n' > "$tmp"
request plugin/message_send_pretty ts=$ms sig="$(sign sha256 "$secret" $ms "$tmp")"; expect_id plugin/message_send_pretty
# A timestamp in seconds is accepted too (the docs do not give its unit).
request plugin/timestamp_seconds ts=$t sig="$(sign sha256 "$secret" $t plugin/timestamp_seconds/body)"; expect_id plugin/timestamp_seconds
request plugin/forged ts=$ms sig="$(sign sha256 "not-the-secret" $ms plugin/forged/body)"; reject plugin/forged signature_mismatch
full=$(sign sha256 "$secret" $ms plugin/truncated/body)
request plugin/truncated ts=$ms sig="${full:0:40}"; reject plugin/truncated malformed_signature
request plugin/sha1_instead ts=$ms sig="$(sign sha1 "$secret" $ms plugin/sha1_instead/body)"; reject plugin/sha1_instead malformed_signature
request plugin/missing_signature; reject plugin/missing_signature missing_signature
request plugin/missing_timestamp sig="$(sign sha256 "$secret" $ms plugin/missing_timestamp/body)"; reject plugin/missing_timestamp malformed_signature
request plugin/tampered ts=$ms sig="$(sign sha256 "$secret" $ms plugin/message_send/body)"; reject plugin/tampered signature_mismatch
stale=$(( (t - 600) * 1000 ))
request plugin/stale ts=$stale sig="$(sign sha256 "$secret" $stale plugin/stale/body)"; reject plugin/stale stale_timestamp
future=$(( (t + 600) * 1000 ))
request plugin/future ts=$future sig="$(sign sha256 "$secret" $future plugin/future/body)"; reject plugin/future stale_timestamp
request plugin/timestamp_not_number ts=yesterday sig="$(sign sha256 "$secret" yesterday plugin/timestamp_not_number/body)"; reject plugin/timestamp_not_number malformed_signature
request plugin/get_method method=GET ts=$ms sig="$(sign sha256 "$secret" $ms plugin/get_method/body)"; reject plugin/get_method method_not_allowed
request plugin/key_without_signature key="$key"; reject plugin/key_without_signature missing_signature

# --- website hooks (key only)
request website/message_send key="$key"; expect_id website/message_send
request website/session_set_email key="$key"; expect_id website/session_set_email
request website/missing_key; reject website/missing_key bad_key
request website/wrong_key key="not-the-key"; reject website/wrong_key bad_key
request website/key_prefix key="${key:0:10}"; reject website/key_prefix bad_key
request website/signature_only ts=$ms sig="$(sign sha256 "$secret" $ms website/signature_only/body)"; reject website/signature_only bad_key

# --- both key and secret: either credential suffices
good=$(sign sha256 "$secret" $ms both/key_only/body)
bad=$(sign sha256 "not-the-secret" $ms both/key_only/body)
request both/key_only key="$key"; expect_id both/key_only
request both/signature_only ts=$ms sig="$good"; expect_id both/signature_only
request both/wrong_key_good_signature key="not-the-key" ts=$ms sig="$good"; expect_id both/wrong_key_good_signature
request both/good_key_bad_signature key="$key" ts=$ms sig="$bad"; expect_id both/good_key_bad_signature
request both/wrong_key_no_signature key="not-the-key"; reject both/wrong_key_no_signature bad_key
request both/nothing; reject both/nothing missing_signature
request both/no_key_bad_signature ts=$ms sig="$bad"; reject both/no_key_bad_signature signature_mismatch
