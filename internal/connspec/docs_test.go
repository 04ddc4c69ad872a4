package connspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsCoverEveryConnector keeps docs/connectors.md in step with the
// registry: every connector has its section and every option its row.
func TestDocsCoverEveryConnector(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "connectors.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, s := range All() {
		head := "### " + s.Name + " (" + string(s.Kind) + ")\n"
		i := strings.Index(doc, head)
		if i < 0 {
			t.Errorf("docs/connectors.md: no section %q", strings.TrimSpace(head))
			continue
		}
		section := doc[i+len(head):]
		if j := strings.Index(section, "\n### "); j >= 0 {
			section = section[:j]
		}
		for _, o := range s.Options {
			row := "| `" + o.Name + "` | " + string(o.Type) + " | "
			k := strings.Index(section, row)
			if k < 0 {
				t.Errorf("docs/connectors.md: %s %s: no row for option %q (%q)", s.Kind, s.Name, o.Name, row)
				continue
			}
			def := strings.TrimSpace(strings.SplitN(section[k+len(row):], "|", 2)[0])
			def = strings.Trim(def, "`")
			want := o.Default
			switch {
			case o.Required:
				want = "required"
			case want == "":
				want = `""`
			}
			if def != want {
				t.Errorf("docs/connectors.md: %s %s: option %q default %q, spec says %q", s.Kind, s.Name, o.Name, def, want)
			}
		}
	}
}
