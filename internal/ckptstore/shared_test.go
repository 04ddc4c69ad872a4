package ckptstore

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Shared files: written once, listed, named by checkpoints' metadata
// (Verify and Latest check them), deleted one by one.
func TestSharedFiles(t *testing.T) {
	root := t.TempDir()
	dir := &Dir{Root: root}
	mem := NewMemory()
	tampers := map[string]func(job, name string, damage func([]byte) []byte){
		"dir": func(job, name string, damage func([]byte) []byte) {
			p := filepath.Join(root, job, sharedFolder, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"memory": mem.TamperShared,
	}
	for name, s := range map[string]Storage{"dir": dir, "memory": mem} {
		t.Run(name, func(t *testing.T) {
			put := func(name, body string) FileInfo {
				w, err := s.CreateShared("j", name)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write([]byte(body)); err != nil {
					t.Fatal(err)
				}
				fi, err := w.Close()
				if err != nil || !fi.Shared {
					t.Fatalf("closing %s: %+v %v", name, fi, err)
				}
				return fi
			}
			a, b := put("a.sst", "first table"), put("b.sst", "second table")
			if got := names(t, s); !slices.Equal(got, []string{"a.sst", "b.sst"}) {
				t.Fatalf("listed %v", got)
			}
			for n, fs := range map[uint64][]FileInfo{1: {a}, 2: {a, b}} {
				if err := s.Commit(Metadata{Job: "j", Checkpoint: n, Files: fs}); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Read("j", 2, b); err != nil || string(got) != "second table" {
				t.Fatalf("read %q %v", got, err)
			}
			if m, _ := s.Metadata("j", 2); !slices.Equal(SharedNames(m), []string{"a.sst", "b.sst"}) {
				t.Fatalf("shared names %v", SharedNames(m))
			}
			// A damaged shared file makes the checkpoints naming it unusable.
			tampers[name]("j", "b.sst", func(p []byte) []byte { p[0] ^= 1; return p })
			m, skipped, err := Latest(s, "j")
			if err != nil || m.Checkpoint != 1 || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, "b.sst fails its checksum") {
				t.Fatalf("latest after damaging b.sst: %+v %+v %v", m, skipped, err)
			}
			if err := s.DiscardShared("j", "b.sst"); err != nil {
				t.Fatal(err)
			}
			if err := s.DiscardShared("j", "b.sst"); err != nil {
				t.Fatalf("discarding again: %v", err)
			}
			if got := names(t, s); !slices.Equal(got, []string{"a.sst"}) {
				t.Fatalf("after discarding b.sst: %v", got)
			}
			// Discarding a checkpoint keeps the shared files.
			if err := s.Discard("j", 1); err != nil {
				t.Fatal(err)
			}
			if got := names(t, s); !slices.Equal(got, []string{"a.sst"}) {
				t.Fatalf("after discarding checkpoint 1: %v", got)
			}
			if _, err := s.CreateShared("j", "../x"); err == nil {
				t.Fatal("a shared name leaving its folder was accepted")
			}
		})
	}
}

func names(t *testing.T, s Storage) []string {
	t.Helper()
	fs, err := s.ListShared("j")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}
