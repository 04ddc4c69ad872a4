package ckptstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenPath(t *testing.T) {
	root := filepath.Join(t.TempDir(), "savepoints")
	d := &Dir{Root: root}
	write(t, d, "wc", 3, map[string]string{"count.0.state": "three"}, true)
	write(t, d, "wc", 7, map[string]string{"count.0.state": "seven"}, true)
	write(t, d, "wc", 8, map[string]string{"count.0.state": "half"}, false)
	chk7 := filepath.Join(root, "wc", "chk-7")

	for _, p := range []string{chk7, chk7 + "/", filepath.Join(chk7, metadataFile), filepath.Join(root, "wc", ".", "chk-7")} {
		s, job, n, err := OpenPath(p)
		if err != nil || job != "wc" || n != 7 {
			t.Fatalf("OpenPath(%s) = %s %d %v", p, job, n, err)
		}
		m, err := s.Metadata(job, n)
		if err != nil || len(m.Files) != 1 {
			t.Fatalf("metadata: %+v %v", m, err)
		}
		if b, err := s.Read(job, n, m.Files[0]); err != nil || string(b) != "seven" {
			t.Fatalf("read %q %v", b, err)
		}
	}

	// A folder copied elsewhere opens where it is.
	moved := filepath.Join(t.TempDir(), "copy", "wc")
	if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "wc"), moved); err != nil {
		t.Fatal(err)
	}
	if s, job, n, err := OpenPath(filepath.Join(moved, "chk-3")); err != nil {
		t.Fatal(err)
	} else if _, err := Verify(s, job, n); err != nil {
		t.Fatalf("verify the moved checkpoint: %v", err)
	}

	file := filepath.Join(t.TempDir(), "chk-1")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, c := range []struct {
		path string
		is   error
		msg  []string
	}{
		{filepath.Join(moved, "chk-9"), ErrNotFound, []string{"does not exist", "<root>/<job>/chk-<n>"}},
		{"", ErrNotCheckpoint, []string{"no path given"}},
		{file, ErrNotCheckpoint, []string{"is a file"}},
		{moved, ErrNotCheckpoint, []string{"holds the checkpoints of job wc", filepath.Join(moved, "chk-7"), "chk-3, chk-7"}},
		{filepath.Dir(moved), ErrNotCheckpoint, []string{"not named chk-<n>"}},
		{filepath.Join(moved, "chk-8"), ErrIncomplete, []string{"checkpoint 8 of job wc", "no _metadata", "chk-3, chk-7 in " + moved}},
	} {
		_, _, _, err := OpenPath(c.path)
		if !errors.Is(err, c.is) {
			t.Errorf("OpenPath(%q): %v, want %v", c.path, err, c.is)
			continue
		}
		for _, m := range c.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("OpenPath(%q): %v, want it to say %q", c.path, err, m)
			}
		}
	}
	// chk-07 is not the folder Dir names chk-7.
	os.Mkdir(filepath.Join(moved, "chk-07"), 0o755)
	if _, _, _, err := OpenPath(filepath.Join(moved, "chk-07")); !errors.Is(err, ErrNotCheckpoint) {
		t.Errorf("chk-07: %v", err)
	}
}
