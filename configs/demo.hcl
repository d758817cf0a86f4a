# The demo layer: `make run` serves it. Edit a file under examples/data/blog,
# run `./bin/synclayer sync demo --wait`, and read what changed by cursor.

service {
  listen    = "127.0.0.1:8750"     # data_dir defaults to ./data, beside where synclayer runs
  log_level = "info"
}

layer "demo" {
  keep_revisions = 20

  source "blog" {
    plugin = "files"
    config {
      dir = "../examples/data/blog"   # relative to this file
    }
  }

  source "people" {                 # the authors live in another source
    plugin = "files"
    config {
      dir = "../examples/data/people"
    }
  }

  # GraphQL (POST /v1/layers/demo/graphql): Post.author joins the two
  # sources; Author.posts lists an author's posts; slug filters use an index.
  reference "Post.author" {
    field   = "author_id"
    to      = "Author"
    reverse = "posts"
  }
  index "Post" { fields = ["slug"] }

  source "gen" {
    plugin = "generator"
    config {
      records       = 1000
      payload_bytes = 256
      models        = ["Item"]
      change_ratio  = 0.05
      seed          = 1
    }
  }
}
