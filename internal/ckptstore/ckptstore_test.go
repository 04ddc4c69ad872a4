package ckptstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// store is a Storage under test and how to damage it.
type store struct {
	s      Storage
	tamper func(job string, n uint64, name string, damage func([]byte) []byte)
}

func stores(t *testing.T) map[string]store {
	root := t.TempDir()
	d := &Dir{Root: root}
	m := NewMemory()
	return map[string]store{
		"dir": {d, func(job string, n uint64, name string, damage func([]byte) []byte) {
			p := filepath.Join(root, job, "chk-"+strconv.FormatUint(n, 10), name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		"memory": {m, m.Tamper},
	}
}

// write makes checkpoint n of job with the given files, committed or not.
func write(t *testing.T, s Storage, job string, n uint64, files map[string]string, commit bool) {
	t.Helper()
	m := Metadata{Job: job, Checkpoint: n, Payload: []byte(`{"operators":["count"]}`)}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w, err := s.Create(job, n, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
		fi, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, fi)
	}
	if commit {
		if err := s.Commit(m); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStorage(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := st.s
			write(t, s, "j", 1, map[string]string{"count-0": "state of subtask 0", "count-1": "state of subtask 1"}, true)
			write(t, s, "j", 2, map[string]string{"count-0": "newer 0", "count-1": "newer 1"}, true)
			write(t, s, "j", 3, map[string]string{"count-0": "half written"}, false) // never committed
			if got, _ := s.Completed("j"); !slices.Equal(got, []uint64{1, 2}) {
				t.Fatalf("completed %v, want [1 2]: an uncommitted checkpoint is not complete", got)
			}
			m, skipped, err := Latest(s, "j")
			if err != nil || m.Checkpoint != 2 || len(skipped) != 0 || string(m.Payload) != `{"operators":["count"]}` {
				t.Fatalf("latest: %+v %v %v", m, skipped, err)
			}
			b, err := s.Read("j", 2, m.Files[1])
			if err != nil || string(b) != "newer 1" {
				t.Fatalf("read %q, %v", b, err)
			}

			// A truncated file: checkpoint 2 is skipped, 1 is used, and why is said.
			st.tamper("j", 2, "count-1", func(b []byte) []byte { return b[:3] })
			m, skipped, err = Latest(s, "j")
			if err != nil || m.Checkpoint != 1 || len(skipped) != 1 || skipped[0].Checkpoint != 2 || !strings.Contains(skipped[0].Reason, "count-1 has 3 bytes") {
				t.Fatalf("after truncating a file: %+v %+v %v", m, skipped, err)
			}
			// A flipped byte in the metadata: checkpoint 1 is unusable too.
			st.tamper("j", 1, metadataFile, func(b []byte) []byte { b[5] ^= 0x20; return b })
			_, skipped, err = Latest(s, "j")
			if !errors.Is(err, ErrNotFound) || len(skipped) != 2 || !strings.Contains(skipped[1].Reason, "_metadata fails its checksum") {
				t.Fatalf("after damaging the metadata: %+v %v", skipped, err)
			}
			if err := s.Discard("j", 2); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Completed("j"); !slices.Equal(got, []uint64{1}) {
				t.Fatalf("after discarding 2: %v", got)
			}
		})
	}
}

func TestNamesThatLeaveTheirFolder(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			for _, bad := range [][2]string{{"../x", "f"}, {"j", "../f"}, {"j", "a/b"}, {"", "f"}, {"j", "_metadata"}, {"..", "f"}} {
				if _, err := st.s.Create(bad[0], 1, bad[1]); !errors.Is(err, ErrInvalid) {
					t.Errorf("Create(%q, %q): %v, want ErrInvalid", bad[0], bad[1], err)
				}
			}
		})
	}
}

// A checkpoint folder that cannot be written: the checkpoint fails with
// the path in the error, and nothing is complete.
func TestUnwritableRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(root, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Dir{Root: root}
	if _, err := d.Create("j", 1, "f"); err == nil || !strings.Contains(err.Error(), "checkpoint 1 of job j") {
		t.Fatalf("create under a file: %v", err)
	}
	if err := d.Commit(Metadata{Job: "j", Checkpoint: 1}); err == nil {
		t.Fatal("commit under a file succeeded")
	}
	if got, _ := d.Completed("j"); len(got) != 0 {
		t.Fatalf("completed %v", got)
	}
}

func FuzzMetadata(f *testing.F) {
	good, _ := encodeMetadata(Metadata{Job: "j", Checkpoint: 7, Files: []FileInfo{{Name: "a", Size: 3, CRC32: 9}}})
	f.Add(good)
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMetadata(b, "j", 7)
		if err == nil && (m.Job != "j" || m.Checkpoint != 7) {
			t.Fatalf("decoded metadata of another checkpoint: %+v", m)
		}
	})
}
