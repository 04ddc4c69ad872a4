package reference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Canonical returns value, a JSON object, re-encoded with sorted keys, no
// spaces and numbers as written, so that two encodings of the same object
// compare equal.
func Canonical(value string) (string, error) {
	d := json.NewDecoder(strings.NewReader(value))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return "", fmt.Errorf("reference: value %q is not a JSON object: %w", value, err)
	}
	if d.More() {
		return "", fmt.Errorf("reference: value %q has data after the JSON object", value)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // maps are encoded with sorted keys
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// Diff compares want and got as multisets of (key, canonical value,
// timestamp) and returns "" when they are equal, else a readable report:
// the counts and the first max missing and unexpected records of each.
func Diff(want, got []Record, max int) string {
	count := func(rs []Record) (map[Record]int, error) {
		m := make(map[Record]int, len(rs))
		for _, r := range rs {
			v, err := Canonical(r.Value)
			if err != nil {
				return nil, err
			}
			r.Value = v
			m[r]++
		}
		return m, nil
	}
	w, err := count(want)
	if err != nil {
		return "expected records: " + err.Error()
	}
	g, err := count(got)
	if err != nil {
		return "output records: " + err.Error()
	}
	var missing, unexpected []string
	for r, n := range w {
		for i := g[r]; i < n; i++ {
			missing = append(missing, r.String())
		}
	}
	for r, n := range g {
		for i := w[r]; i < n; i++ {
			unexpected = append(unexpected, r.String())
		}
	}
	if len(missing) == 0 && len(unexpected) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	var b strings.Builder
	fmt.Fprintf(&b, "%d records expected, %d produced: %d missing, %d unexpected", len(want), len(got), len(missing), len(unexpected))
	list := func(title string, rs []string) {
		if len(rs) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:", title)
		for i, r := range rs {
			if i == max {
				fmt.Fprintf(&b, "\n  ... and %d more", len(rs)-max)
				break
			}
			b.WriteString("\n  " + r)
		}
	}
	list("missing (expected, not produced)", missing)
	list("unexpected (produced, not expected)", unexpected)
	return b.String()
}
