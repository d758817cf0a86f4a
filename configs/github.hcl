# A layer of the issues, pull requests and comments of GitHub repositories
# (SPEC §11 github; docs/connectors/github.md). Set the variables, then:
#
#   export GITHUB_TOKEN=…            # fine-grained token: Issues, Pull requests, Metadata read-only
#   export GITHUB_WEBHOOK_SECRET=…   # optional: changes within seconds from the repository's webhook
#   ./bin/synclayer serve --config configs/github.hcl
#
# Records: models Issue, PullRequest and Comment, e.g.
#   ./bin/synclayer records dev --model Issue
# Webhook URL to give GitHub: https://<your host>/hooks/sources/dev/github

layer "dev" {
  keep_revisions = 20

  source "github" {
    plugin = "github"
    config {
      token          = env("GITHUB_TOKEN")                              # sensitive
      repos          = ["octo-org/octo-repo"]                           # "owner/name", as many as the token may read
      base_url       = env("GITHUB_API_URL", "https://api.github.com")  # GitHub Enterprise Server: https://HOST/api/v3
      webhook_secret = env("GITHUB_WEBHOOK_SECRET", "")                 # sensitive; "" refuses webhooks
    }

    # One sync per model. Polls are a safety net beside the webhook; an
    # unchanged repository answers 304, which costs no rate limit.
    sync "issue" {
      every         = "15m"
      track_deletes = true      # a full run (first run, reset) finds issues deleted on GitHub
      timeout       = "2h"      # a run may wait up to an hour for GitHub's rate limit to reset
      retry {
        attempts = 5            # a failed run resumes at the page of its last checkpoint
        backoff  = "10s"
        max      = "10m"
      }
    }

    sync "pullrequest" {
      every   = "15m"
      timeout = "2h"            # pull requests are never deleted on GitHub
      retry {
        attempts = 5
        backoff  = "10s"
        max      = "10m"
      }
    }

    sync "comment" {
      every         = "15m"
      track_deletes = true
      timeout       = "2h"
      retry {
        attempts = 5
        backoff  = "10s"
        max      = "10m"
      }
    }
  }
}
