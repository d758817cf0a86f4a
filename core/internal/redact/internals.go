package redact

import (
	"regexp"
	"strings"
)

// socketPath matches the Unix socket paths that gRPC and go-plugin put in
// their errors ("dial unix /tmp/plugin123: connect: ...").
var socketPath = regexp.MustCompile(`\bunix(gram)?([: ]+)/[^\s"'\\,;):]+`)

// Internals takes host internals out of an error text shown to clients (the
// API, the dashboard): plugin socket paths. The server log keeps the full
// text.
func Internals(s string) string {
	if !strings.Contains(s, "unix") {
		return s
	}
	return socketPath.ReplaceAllString(s, "unix${1}${2}[plugin socket]")
}
