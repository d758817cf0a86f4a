package config

import (
	"strings"
	"testing"
)

func TestLoadGraphQLBlocks(t *testing.T) {
	p := writeFile(t, t.TempDir(), "l.hcl", `
layer "l" {
  source "blog" {
    plugin      = "files"
    type_prefix = "Blog"
  }
  source "people" { plugin = "files" }
  reference "BlogPost.author" {
    field   = "author_id"
    to      = "Author"
    reverse = "posts"
  }
  reference "BlogPost.editor" {
    field = "editor_email"
    to    = "Author"
    by    = "email"
  }
  index "BlogPost" { fields = ["slug", "author_id"] }
}
`)
	cfg := mustLoad(t, p)
	l := cfg.Layers[0]
	if l.Sources[0].TypePrefix != "Blog" || l.Sources[1].TypePrefix != "" {
		t.Fatalf("type prefixes: %q %q", l.Sources[0].TypePrefix, l.Sources[1].TypePrefix)
	}
	if len(l.References) != 2 {
		t.Fatalf("references: %+v", l.References)
	}
	r := l.References[0]
	if r.Type != "BlogPost" || r.Name != "author" || r.Field != "author_id" || r.To != "Author" || r.By != "id" || r.Reverse != "posts" {
		t.Fatalf("reference: %+v", r)
	}
	if r := l.References[1]; r.By != "email" || r.Reverse != "" {
		t.Fatalf("reference with by: %+v", r)
	}
	if len(l.Indexes) != 1 || l.Indexes[0].Type != "BlogPost" || strings.Join(l.Indexes[0].Fields, ",") != "slug,author_id" {
		t.Fatalf("indexes: %+v", l.Indexes)
	}
}

func TestLoadGraphQLBlockErrors(t *testing.T) {
	layerWith := func(body string) string {
		return "layer \"l\" {\n  source \"s\" { plugin = \"p\" }\n" + body + "}\n"
	}
	cases := []struct{ name, src, at, want string }{
		{"reference without dot", layerWith("  reference \"Post\" {\n    field = \"a\"\n    to = \"A\"\n  }\n"), `reference |"Post"`, "Invalid reference name"},
		{"reference bad type", layerWith("  reference \"1Post.x\" {\n    field = \"a\"\n    to = \"A\"\n  }\n"), `reference |"1Post.x"`, "Invalid reference name"},
		{"reference without to", layerWith("  reference \"Post.x\" {\n    field = \"a\"\n  }\n"), `reference "Post.x" |{`, `The argument "to" is required`},
		{"reference bad to", layerWith("  reference \"Post.x\" {\n    field = \"a\"\n    to = \"my-type\"\n  }\n"), `|"my-type"`, "is not a type name"},
		{"reference bad reverse", layerWith("  reference \"Post.x\" {\n    field = \"a\"\n    to = \"A\"\n    reverse = \"all posts\"\n  }\n"), `|"all posts"`, "is not a field name"},
		{"duplicate reference", layerWith("  reference \"Post.x\" {\n    field = \"a\"\n    to = \"A\"\n  }\n  reference \"Post.x\" {\n    field = \"b\"\n    to = \"A\"\n  }\n"), `#2:|reference`, `Duplicate reference "Post.x"`},
		{"duplicate reverse", layerWith("  reference \"Post.x\" {\n    field = \"a\"\n    to = \"A\"\n    reverse = \"r\"\n  }\n  reference \"Post.y\" {\n    field = \"b\"\n    to = \"A\"\n    reverse = \"r\"\n  }\n"), `#2:|reference`, "Duplicate reverse field"},
		{"index empty", layerWith("  index \"Post\" {\n    fields = []\n  }\n"), `|[]`, "must not be empty"},
		{"index bad name", layerWith("  index \"Po st\" {\n    fields = [\"a\"]\n  }\n"), `index |"Po st"`, "Invalid index name"},
		{"duplicate index", layerWith("  index \"Post\" {\n    fields = [\"a\"]\n  }\n  index \"Post\" {\n    fields = [\"b\"]\n  }\n"), `#2:|index`, `Duplicate index "Post"`},
		{"bad type prefix", "layer \"l\" {\n  source \"s\" {\n    plugin = \"p\"\n    type_prefix = \"my-\"\n  }\n}\n", `|"my-"`, "not a valid type prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := loadErrors(t, "l.hcl", c.src)
			if !strings.Contains(got, c.want) {
				t.Fatalf("diagnostics lack %q:\n%s", c.want, got)
			}
			if pos := position(t, c.src, c.at); !strings.Contains(got, "l.hcl:"+pos) {
				t.Fatalf("diagnostics not at %s:\n%s", pos, got)
			}
		})
	}
}
