#!/usr/bin/env bash
# Computes every vector's Stripe-Signature with openssl, independently of the
# code under test: v1 = hex HMAC-SHA256 of "<t>.<raw body>", keyed with the
# endpoint's signing secret as Stripe shows it (the text in ./secret, whsec_
# included). Stripe publishes no test value to check openssl against; the
# formula is the one its webhook documentation spells out step by step.
# Also writes each rejected vector's want.json and, in ids.txt, the event id
# each accepted vector must keep (the body's own id, read by python3).
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
received="2026-11-20T10:15:30Z"
t=$(date -u -d "$received" +%s)

sign() { # sign KEY TIMESTAMP FILE
  { printf '%s.' "$2"; cat "$3"; } | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1
}
request() { # request DIR [HEADER-VALUE]
  local hdr=""
  if [ -n "${2:-}" ]; then hdr=", \"Stripe-Signature\": \"$2\""; fi
  printf '{"method": "POST", "path": "/webhooks/stripe", "received_at": "%s", "headers": {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"%s}}\n' \
    "$received" "$hdr" > "$1/request.json"
}
reject() { # reject DIR REASON
  printf '{"reason": "%s"}\n' "$2" > "$1/want.json"
}

# Accepted: a live checkout, a connected account's payment, a thin event.
for d in checkout_session_completed connect_payment_intent thin_event; do
  request $d "t=$t,v1=$(sign "$secret" $t $d/body)"
done
# A test-mode event: Stripe adds a v0 signature, which is ignored.
request customer_created "t=$t,v1=$(sign "$secret" $t customer_created/body),v0=$(sign "whsec_stripeTestModeSchemeKey" $t customer_created/body)"
# While the secret is rolled: a v1 for a secret not configured here, then ours.
request rolled_secret "t=$t,v1=$(sign "whsec_theEndpointsNextSecret2b8c" $t rolled_secret/body),v1=$(sign "$secret" $t rolled_secret/body)"

# Rejected.
request v0_only "t=$t,v0=$(sign "$secret" $t v0_only/body)"
reject v0_only missing_signature
stale_t=$((t - 600))
request stale "t=$stale_t,v1=$(sign "$secret" $stale_t stale/body)"
reject stale stale_timestamp
request tampered "t=$t,v1=$(sign "$secret" $t checkout_session_completed/body)"
reject tampered signature_mismatch
request wrong_secret "t=$t,v1=$(sign "whsec_anotherEndpointsSecret4d1e" $t wrong_secret/body)"
reject wrong_secret signature_mismatch
request malformed "t=20261120T101530Z,v1=$(sign "$secret" $t malformed/body)"
reject malformed malformed_signature
request missing_timestamp "v1=$(sign "$secret" $t missing_timestamp/body)"
reject missing_timestamp malformed_signature
full=$(sign "$secret" $t truncated_signature/body)
request truncated_signature "t=$t,v1=${full:0:40}"
reject truncated_signature malformed_signature
request missing_signature
reject missing_signature missing_signature

for d in checkout_session_completed connect_payment_intent customer_created rolled_secret thin_event; do
  printf '%s %s\n' "$d" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' $d/body)"
done > ids.txt
