#!/usr/bin/env bash
# A `[tickets]` hook for GitHub issues: rollgate runs it once a rollout ends,
# with the outcome in its environment. It comments on the issue with the
# outcome, the summary and a link to the rollout, then closes the issue when
# the rollout completed (an aborted or rolled-back rollout leaves it open for
# the follow-up). Safe to run again: a comment carrying the same idempotency
# key is not posted twice.
#
#   [tickets]
#   command = ["docs/hooks/github-ticket.sh"]
#   attempts = 5
#
# Start rollouts with --ticket OWNER/REPO#NUMBER or the URL
# (https://github.com/OWNER/REPO/issues/NUMBER). Needs GITHUB_TOKEN (a token
# that may write issues), curl and python3. GITHUB_API overrides the API's
# address (GitHub Enterprise, or a test server).
set -euo pipefail

api="${GITHUB_API:-https://api.github.com}"
: "${GITHUB_TOKEN:?set GITHUB_TOKEN to a token that may comment on and close issues}"
: "${ROLLGATE_TICKET:?run by rollgate: ROLLGATE_TICKET names the issue}"

# OWNER/REPO#NUMBER, or https://github.com/OWNER/REPO/issues/NUMBER.
ticket="${ROLLGATE_TICKET#https://github.com/}"
ticket="${ticket/\/issues\//#}"
repo="${ticket%%#*}"
number="${ticket##*#}"
if [[ -z "$repo" || "$repo" == "$ticket" || ! "$number" =~ ^[0-9]+$ ]]; then
  echo "cannot read a GitHub issue from ticket '$ROLLGATE_TICKET' (want OWNER/REPO#NUMBER or an issue URL)" >&2
  exit 2
fi

github() { # METHOD PATH [JSON]
  curl --fail-with-body --silent --show-error -X "$1" "$api$2" \
    -H "Authorization: Bearer $GITHUB_TOKEN" -H "Accept: application/vnd.github+json" \
    -H "X-GitHub-Api-Version: 2022-11-28" ${3:+-H "Content-Type: application/json" --data "$3"}
}

marker="rollgate:${ROLLGATE_IDEMPOTENCY_KEY:-$ROLLGATE_ROLLOUT}"
if github GET "/repos/$repo/issues/$number/comments?per_page=100" | grep -qF "$marker"; then
  echo "already commented on $repo#$number ($marker)"
else
  body=$(python3 -c '
import json, os, sys
env = os.environ.get
lines = ["**rollgate**: rollout `%s` of `%s` ended: **%s**" % (env("ROLLGATE_ROLLOUT", ""), env("ROLLGATE_SERVICE", ""), env("ROLLGATE_OUTCOME", "")),
         "", env("ROLLGATE_SUMMARY", "")]
if env("ROLLGATE_LINK"):
    lines += ["", "Details: " + env("ROLLGATE_LINK")]
lines += ["", "<!-- %s -->" % sys.argv[1]]
print(json.dumps({"body": "\n".join(lines)}))' "$marker")
  github POST "/repos/$repo/issues/$number/comments" "$body" > /dev/null
  echo "commented on $repo#$number"
fi

if [[ "${ROLLGATE_OUTCOME:-}" == "completed" ]]; then
  github PATCH "/repos/$repo/issues/$number" '{"state":"closed","state_reason":"completed"}' > /dev/null
  echo "closed $repo#$number"
fi
