package api

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "wordcount", "1.0", "1.0.0-rc.1", "v2_beta", "A-b.C_d", strings.Repeat("x", MaxNameLen)} {
		if err := CheckName("version", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a..b", ".a", "-a", "_a", "a/b", `a\b`, "a b", "a@b", "a\x00", "ä", strings.Repeat("x", MaxNameLen+1)} {
		if err := CheckName("version", bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
	if err := CheckName("name", "by-digest"); err == nil {
		t.Error("the reserved name was accepted")
	}
	if err := CheckName("version", "by-digest"); err != nil {
		t.Errorf("by-digest as a version: %v", err)
	}
}

func TestModuleRef(t *testing.T) {
	for s, want := range map[string]bool{"wc@1": true, "wc": false, "./wc@1.wasm": false, `d\wc@1`: false, "a/b@1": false, "@": true} {
		if got := IsModuleRef(s); got != want {
			t.Errorf("IsModuleRef(%q) = %v", s, got)
		}
	}
	if n, v, err := ParseModuleRef("wordcount@1.0.2"); err != nil || n != "wordcount" || v != "1.0.2" {
		t.Errorf("ParseModuleRef = %q %q %v", n, v, err)
	}
	for _, bad := range []string{"wc", "@1", "wc@", "wc@1@2", "w c@1", "wc@.."} {
		if _, _, err := ParseModuleRef(bad); err == nil {
			t.Errorf("ParseModuleRef(%q) accepted", bad)
		}
	}
}
