package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/coordinator/registry"
	"github.com/weirstream/weir/internal/modinfo"
	"github.com/weirstream/weir/internal/modinfo/modinfotest"
	"github.com/weirstream/weir/wasmabi"
)

func open(t *testing.T, dir string) *registry.Registry {
	t.Helper()
	r, err := registry.Open(registry.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// files lists every regular file under dir, relative.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPutGet(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	b := modinfotest.Module(t, modinfotest.Options{Operators: modinfotest.Ops("split:flat_map", "count:process")})
	m, created, err := r.Put(ctx, "default", "wc", "1.0", b)
	if err != nil || !created {
		t.Fatalf("Put: %v, created %v", err, created)
	}
	if m.Digest != sha(b) || m.Size != int64(len(b)) || m.ABI != wasmabi.Version || m.Tenant != "default" || len(m.Operators) != 2 || m.Operators[1].Kind != wasmabi.KindProcess {
		t.Errorf("info = %+v", m)
	}
	want := []string{"blobs/sha256/" + sha(b), "index/default/wc/1.0.json"}
	if got := files(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	stored, _ := os.ReadFile(filepath.Join(dir, "blobs/sha256", sha(b)))
	if !bytes.Equal(stored, b) {
		t.Error("stored bytes differ from the upload")
	}
	// The same bytes again: no-op. Other bytes: refused, nothing changes.
	if again, created, err := r.Put(ctx, "default", "wc", "1.0", b); err != nil || created || again.Uploaded != m.Uploaded {
		t.Errorf("repeated Put: %v, created %v", err, created)
	}
	other := modinfotest.Module(t, modinfotest.Options{Salt: "other"})
	if _, _, err := r.Put(ctx, "default", "wc", "1.0", other); !errors.Is(err, registry.ErrExists) || !strings.Contains(err.Error(), "new version") {
		t.Errorf("conflicting Put: %v", err)
	}
	if got := files(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("after a refused Put, files = %v, want %v", got, want)
	}
	// The same bytes under another version share the blob.
	if _, _, err := r.Put(ctx, "default", "wc", "1.1", b); err != nil {
		t.Fatal(err)
	}
	if n := len(files(t, filepath.Join(dir, "blobs"))); n != 1 {
		t.Errorf("%d blobs, want 1", n)
	}
	got, err := r.Get("default", "wc", "1.0")
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, m)
	}
	blob, err := r.ReadBlob(m.Digest)
	if err != nil || !bytes.Equal(blob, b) {
		t.Errorf("ReadBlob: %v", err)
	}
	// Another tenant does not see it.
	if _, err := r.Get("acme", "wc", "1.0"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("other tenant's Get: %v", err)
	}

	// Reopening loads the same index.
	r.Close()
	r2 := open(t, dir)
	if got := r2.List("default", ""); len(got) != 2 || !reflect.DeepEqual(got[0], m) {
		t.Errorf("after reopening, List = %+v", got)
	}
}

func TestNotFoundListsWhatExists(t *testing.T) {
	r := open(t, t.TempDir())
	ctx := context.Background()
	for i, v := range []string{"1.10", "1.9", "2.0"} {
		b := modinfotest.Module(t, modinfotest.Options{Salt: v})
		if _, _, err := r.Put(ctx, "default", "wordcount", v, b); err != nil {
			t.Fatal(i, err)
		}
	}
	if _, _, err := r.Put(ctx, "default", "fraud", "1", modinfotest.Module(t, modinfotest.Options{})); err != nil {
		t.Fatal(err)
	}
	_, err := r.Get("default", "wordcount", "3.0")
	var nf *registry.NotFoundError
	if !errors.As(err, &nf) || !reflect.DeepEqual(nf.Versions, []string{"1.9", "1.10", "2.0"}) ||
		!strings.Contains(err.Error(), "versions of wordcount: 1.9, 1.10, 2.0") {
		t.Errorf("missing version: %v", err)
	}
	_, err = r.Get("default", "wordcont", "1.0")
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), `did you mean "wordcount"`) || !strings.Contains(err.Error(), "modules: fraud, wordcount") {
		t.Errorf("missing name: %v", err)
	}
	if got := r.List("default", "wordcount"); len(got) != 3 || got[0].Version != "1.9" || got[2].Version != "2.0" {
		t.Errorf("List = %+v", got)
	}
}

func TestPutRefuses(t *testing.T) {
	dir := t.TempDir()
	r, err := registry.Open(registry.Config{Dir: dir, MaxModuleBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	valid := modinfotest.Module(t, modinfotest.Options{})
	big := modinfotest.Module(t, modinfotest.Options{Salt: strings.Repeat("x", 5000)})
	long := strings.Repeat("a", registry.MaxNameLen+1)
	cases := []struct {
		tenant, name, version string
		wasm                  []byte
		want                  error
	}{
		{"default", "../etc", "1", valid, registry.ErrInvalidName},
		{"default", "a/b", "1", valid, registry.ErrInvalidName},
		{"default", "..", "1", valid, registry.ErrInvalidName},
		{"default", ".hidden", "1", valid, registry.ErrInvalidName},
		{"default", "wc", "1..2", valid, registry.ErrInvalidName},
		{"default", "wc", "../../x", valid, registry.ErrInvalidName},
		{"default", "wc", `1\2`, valid, registry.ErrInvalidName},
		{"default", "wc", "1 2", valid, registry.ErrInvalidName},
		{"default", "wc", "1\x00", valid, registry.ErrInvalidName},
		{"default", "", "1", valid, registry.ErrInvalidName},
		{"default", "wc", "", valid, registry.ErrInvalidName},
		{"default", long, "1", valid, registry.ErrInvalidName},
		{"default", "by-digest", "1", valid, registry.ErrInvalidName},
		{"../x", "wc", "1", valid, registry.ErrInvalidName},
		{"default", "wc", "1", []byte("not wasm"), registry.ErrInvalidModule},
		{"default", "wc", "1", modinfotest.Module(t, modinfotest.Options{Version: "(i32.const 7)"}), registry.ErrInvalidModule},
		{"default", "wc", "1", big, registry.ErrTooLarge},
	}
	for _, c := range cases {
		_, _, err := r.Put(context.Background(), c.tenant, c.name, c.version, c.wasm)
		if !errors.Is(err, c.want) {
			t.Errorf("Put(%q, %q, %q) = %v, want %v", c.tenant, c.name, c.version, err, c.want)
		}
	}
	// ABI errors say which versions.
	_, _, err = r.Put(context.Background(), "default", "wc", "1", modinfotest.Module(t, modinfotest.Options{Version: "(i32.const 7)"}))
	if !errors.Is(err, modinfo.ErrABI) || !strings.Contains(err.Error(), "v7") {
		t.Errorf("ABI v7: %v", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("refused uploads left files: %v", got)
	}
}

func TestOpenCleansAndChecks(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	b := modinfotest.Module(t, modinfotest.Options{})
	m, _, err := r.Put(context.Background(), "default", "wc", "1", b)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// A write a crash interrupted is removed.
	os.WriteFile(filepath.Join(dir, "tmp", "half.123"), []byte("x"), 0o644)
	open(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "tmp", "half.123")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stray tmp file still there: %v", err)
	}
	// Corrupted bytes are caught when read.
	os.WriteFile(filepath.Join(dir, "blobs/sha256", m.Digest), []byte("garbage"), 0o644)
	if _, err := open(t, dir).ReadBlob(m.Digest); err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Errorf("ReadBlob of corrupted bytes: %v", err)
	}
	// A missing blob fails Open with the entry's name.
	os.Remove(filepath.Join(dir, "blobs/sha256", m.Digest))
	if _, err := registry.Open(registry.Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "1.json") {
		t.Errorf("Open with a missing blob: %v", err)
	}
	// A malformed digest is refused before touching the disk.
	if _, err := open(t, t.TempDir()).OpenBlob("../../etc/passwd"); !errors.Is(err, registry.ErrInvalidName) {
		t.Errorf("OpenBlob(path): %v", err)
	}
}

// TestConcurrentPuts uploads different bytes under one name@version from
// many goroutines: exactly one wins.
func TestConcurrentPuts(t *testing.T) {
	r := open(t, t.TempDir())
	const n = 6
	mods := make([][]byte, n)
	for i := range mods {
		mods[i] = modinfotest.Module(t, modinfotest.Options{Salt: strings.Repeat("s", i+1)})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = r.Put(context.Background(), "default", "wc", "1", mods[i])
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, registry.ErrExists):
			t.Errorf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d uploads won, want 1", won)
	}
}

func TestLessVersion(t *testing.T) {
	sorted := []string{"0.9", "1", "1.0", "1.2", "1.9", "1.10", "1.10.1", "2.0-rc1", "2.0-rc2", "2.0.0", "10", "a", "v2", "v10"}
	for i := range sorted {
		for j := range sorted {
			if got := registry.LessVersion(sorted[i], sorted[j]); got != (i < j) {
				t.Errorf("LessVersion(%q, %q) = %v", sorted[i], sorted[j], got)
			}
		}
	}
}
