package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// FormatDiagnostics renders diagnostics one per line, each line ending in a
// newline:
//
//	path/to/file.hcl:LINE:COL: error: Summary; Detail
//
// "warning" replaces "error" for warnings; "; Detail" is left out when there
// is no detail, and line breaks inside summary or detail become spaces. A
// diagnostic whose subject has a file but no position starts with the file
// alone ("path: error: …"); one without a subject starts with the severity.
func FormatDiagnostics(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		if d == nil {
			continue
		}
		if s := d.Subject; s != nil && s.Filename != "" {
			if s.Start.Line > 0 {
				fmt.Fprintf(&b, "%s:%d:%d: ", s.Filename, s.Start.Line, s.Start.Column)
			} else {
				fmt.Fprintf(&b, "%s: ", s.Filename)
			}
		}
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		b.WriteString(sev)
		b.WriteString(": ")
		b.WriteString(oneLine(d.Summary))
		if d.Detail != "" {
			b.WriteString("; ")
			b.WriteString(oneLine(d.Detail))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// oneLine replaces line breaks with spaces and trims the ends.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", " ")
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.TrimSpace(s)
}
