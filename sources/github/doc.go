// Package github is the `github` source type: it receives GitHub's webhooks
// (repository, organization and GitHub App hooks, on github.com and GitHub
// Enterprise Server).
//
// GitHub signs each delivery with the hook's secret: X-Hub-Signature-256 is
// "sha256=" and the hex HMAC-SHA256 of the raw body. A request is accepted
// when it matches the secret, or any of secrets while the hook's secret is
// being rotated (GitHub keeps one secret per hook, and does not retry a
// delivery that failed: set the new secret here first). The legacy SHA-1
// X-Hub-Signature is not accepted. Comparisons are constant-time. GitHub
// signs no timestamp: a replayed delivery is dropped as a duplicate of its
// X-GitHub-Delivery id within queue.dedup_window.
//
// YAML keys (besides the common type, path, allow_ips and body_limit):
//
//	secret   the hook's secret; required unless secrets is given
//	secrets  several secrets while rotating; any one may match
//
// Both content types GitHub offers are read: application/json, and
// application/x-www-form-urlencoded, whose payload field holds the JSON.
//
// The CloudEvent:
//
//	id       X-GitHub-Delivery, which a redelivery keeps
//	type     com.github.<X-GitHub-Event>[.<action>], e.g. com.github.issues.opened,
//	         com.github.pull_request.closed, com.github.push, com.github.ping
//	source   the repository's html_url, else https://github.com/<organization>,
//	         else https://github.com
//	subject  pulls/<number>, issues/<number>, discussions/<number>,
//	         releases/<tag>, or the ref of a push, create or delete
//	time     the receive time (GitHub's payloads carry no event time of their own)
//	data     the JSON payload
//
// bridge send signs a payload as GitHub does; it sets X-GitHub-Event from
// the payload's shape (ping for one with zen, pull_request, issue_comment,
// issues, push) when the request has none.
package github
