#!/usr/bin/env bash
# Computes every vector's X-Slack-Signature with openssl, independently of
# the code under test: "v0=" and the hex HMAC-SHA256, keyed with the app's
# signing secret (the text in ./secret), of "v0:<X-Slack-Request-Timestamp>:<raw body>".
# Slack's own documented example is checked first, so this script is checked
# against Slack too. Also writes ids.txt, each event vector's expected
# CloudEvent id worked out here: the payload's event_id, else the SHA-256 of
# the body.
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
received="2026-11-20T10:15:30Z"
t=$(date -u -d "$received" +%s)
ts=$((t - 2)) # Slack sent it two seconds before it arrived

sign() { # sign SECRET TIMESTAMP FILE
  { printf 'v0:%s:' "$2"; cat "$3"; } | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1
}

# Slack's documented example ("Verifying requests from Slack"): a slash
# command's body signed at 1531420618 with the secret below.
doc_body='token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c'
doc=$(printf 'v0:1531420618:%s' "$doc_body" | openssl dgst -sha256 -hmac 8f742231b10e8888abcd99yyyzzz85a5 -r | cut -d' ' -f1)
[ "$doc" = "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503" ] || { echo "openssl disagrees with Slack's documented example: $doc" >&2; exit 1; }

# request DIR [ts=..] [sig=..] [at=RECEIVED] [retry=NUM] [type=CONTENT-TYPE]
request() {
  local dir=$1 stamp="" sig="" at=$received retry="" ctype=application/json hdr
  shift
  for a in "$@"; do
    case $a in
      ts=*) stamp=${a#ts=} ;; sig=*) sig=${a#sig=} ;; at=*) at=${a#at=} ;; retry=*) retry=${a#retry=} ;; type=*) ctype=${a#type=} ;;
    esac
  done
  hdr="\"Content-Type\": \"$ctype\", \"User-Agent\": \"Slackbot 1.0 (+https://api.slack.com/robots)\""
  [ -n "$stamp" ] && hdr="$hdr, \"X-Slack-Request-Timestamp\": \"$stamp\""
  [ -n "$sig" ] && hdr="$hdr, \"X-Slack-Signature\": \"$sig\""
  [ -n "$retry" ] && hdr="$hdr, \"X-Slack-Retry-Num\": \"$retry\", \"X-Slack-Retry-Reason\": \"http_timeout\""
  printf '{"method": "POST", "path": "/webhooks/slack", "received_at": "%s", "headers": {%s}}\n' "$at" "$hdr" > "$dir/request.json"
}
reject() { printf '{"reason": "%s"}\n' "$2" > "$1/want.json"; }
expect_id() { # expect_id DIR: event_id, else the body's SHA-256
  local id
  id=$(jq -r '.event_id // empty' "$1/body" 2>/dev/null || true) # a form body is not JSON
  [ -n "$id" ] || id=$(sha256sum < "$1/body" | cut -d' ' -f1)
  echo "$1 $id" >> ids.txt
}
good() { request "$1" ts=$ts sig="v0=$(sign "$secret" $ts "$1/body")" "${@:2}"; }
: > ids.txt

# The URL verification: answered with its challenge, not an event.
good url_verification
printf '{"reply": "%s"}\n' "$(jq -r .challenge url_verification/body)" > url_verification/want.json
request url_verification_forged ts=$ts sig="v0=$(sign "another-app-secret" $ts url_verification_forged/body)"
reject url_verification_forged signature_mismatch

for d in app_mention message_channel_join message reaction_added team_join app_rate_limited; do
  good $d; expect_id $d
done
# Interactivity requests: the form's payload field holds the JSON in
# payload.json, encoded here.
for d in block_actions view_submission; do
  jq -rj '"payload=" + (tojson | @uri)' $d/payload.json > $d/body
  good $d type=application/x-www-form-urlencoded; expect_id $d
done
# A slash command: its form fields are the payload.
good slash_command type=application/x-www-form-urlencoded; expect_id slash_command
# Slack's first retry of app_mention after a timeout, a minute later: a new
# timestamp and signature, the same body.
retry_at="2026-11-20T10:16:31Z"
rts=$(( $(date -u -d "$retry_at" +%s) - 1 ))
request retry ts=$rts sig="v0=$(sign "$secret" $rts retry/body)" at=$retry_at retry=1; expect_id retry
up=$(sign "$secret" $ts uppercase_hex/body | tr a-f A-F)
request uppercase_hex ts=$ts sig="v0=$up"; expect_id uppercase_hex

stale=$((t - 600))
request stale ts=$stale sig="v0=$(sign "$secret" $stale stale/body)"; reject stale stale_timestamp
future=$((t + 600))
request future ts=$future sig="v0=$(sign "$secret" $future future/body)"; reject future stale_timestamp
request tampered ts=$ts sig="v0=$(sign "$secret" $ts app_mention/body)"; reject tampered signature_mismatch
request wrong_secret ts=$ts sig="v0=$(sign "another-app-secret" $ts wrong_secret/body)"; reject wrong_secret signature_mismatch
request malformed ts=$ts sig="$(sign "$secret" $ts malformed/body)"; reject malformed malformed_signature
request other_version ts=$ts sig="v1=$(sign "$secret" $ts other_version/body)"; reject other_version malformed_signature
request missing_signature ts=$ts; reject missing_signature missing_signature
request missing_timestamp sig="v0=$(sign "$secret" $ts missing_timestamp/body)"; reject missing_timestamp malformed_signature
request timestamp_not_number ts=yesterday sig="v0=$(sign "$secret" yesterday timestamp_not_number/body)"; reject timestamp_not_number malformed_signature
