// Package registry is the coordinator's module registry: operator modules
// stored on disk by content (sha256), with a name, a version and a tenant
// each, validated when they are uploaded and resolved by name@version when a
// job is submitted.
//
// A version is immutable: uploading the same bytes under the same
// name@version again is a no-op, other bytes are refused. Blobs are shared
// between names, versions and tenants with the same content.
//
// Layout under Config.Dir:
//
//	blobs/sha256/<hex>                       module bytes
//	index/<tenant>/<name>/<version>.json     api.ModuleInfo
//	tmp/                                     files being written
//
// Every file is written to tmp/, fsynced and renamed into place, and its
// folder fsynced, so a crash leaves either the old state or the new one and
// at worst a stray file in tmp/, which Open removes.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/modinfo"
	"github.com/weirstream/weir/internal/suggest"
)

// Defaults of Config.
const (
	DefaultMaxModuleBytes     = modinfo.DefaultMaxBytes
	DefaultConcurrentDescribe = 2
)

// Config configures a Registry.
type Config struct {
	// Dir holds the registry (created if missing).
	Dir string
	// MaxModuleBytes is the largest module accepted (default 64 MiB).
	MaxModuleBytes int
	// Describe bounds the sandboxed describe of each upload; its MaxBytes
	// is MaxModuleBytes.
	Describe modinfo.Limits
	// ConcurrentDescribe bounds the uploads described at once, which
	// bounds the memory compiling them takes (default 2).
	ConcurrentDescribe int
	// Now is the clock of upload times (default time.Now).
	Now func() time.Time
}

// Validate fills defaults and checks the values.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("registry: no folder given (Config.Dir)")
	}
	if c.MaxModuleBytes == 0 {
		c.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if c.MaxModuleBytes < 0 {
		return fmt.Errorf("registry: negative module size limit %d", c.MaxModuleBytes)
	}
	c.Describe.MaxBytes = c.MaxModuleBytes
	if err := c.Describe.Validate(); err != nil {
		return err
	}
	if c.ConcurrentDescribe == 0 {
		c.ConcurrentDescribe = DefaultConcurrentDescribe
	}
	if c.ConcurrentDescribe < 0 {
		return fmt.Errorf("registry: negative describe concurrency %d", c.ConcurrentDescribe)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Errors the registry wraps.
var (
	// ErrInvalidName: a name, version or tenant with characters other
	// than letters, digits, '_', '-' and '.', starting with '.', holding
	// "..", or too long.
	ErrInvalidName = errors.New("registry: invalid name")
	// ErrInvalidModule: the upload is not a valid module (it wraps the
	// modinfo error too).
	ErrInvalidModule = errors.New("registry: invalid module")
	// ErrTooLarge: the upload is over the size limit.
	ErrTooLarge = errors.New("registry: module too large")
	// ErrExists: name@version exists with other content.
	ErrExists = errors.New("registry: version exists")
	// ErrNotFound: no such module, version or digest.
	ErrNotFound = errors.New("registry: not found")
	// ErrClosed: the registry was closed.
	ErrClosed = errors.New("registry: closed")
)

// MaxNameLen bounds names, versions and tenants.
const MaxNameLen = api.MaxNameLen

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CheckName checks a module name, version or tenant; what says which
// ("name", "version", "tenant"). The rule is api.CheckName's.
func CheckName(what, s string) error {
	if err := api.CheckName(what, s); err != nil {
		return fmt.Errorf("%w%s", ErrInvalidName, strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()))
	}
	return nil
}

// CheckDigest checks a lowercase hex sha256.
func CheckDigest(d string) error {
	if !digestRE.MatchString(d) {
		return fmt.Errorf("%w: digest %q: want 64 lowercase hex digits (a sha256)", ErrInvalidName, d)
	}
	return nil
}

type key struct{ tenant, name, version string }

// Registry is a module registry on disk. It is safe for concurrent use.
type Registry struct {
	cfg Config
	sem chan struct{} // bounds concurrent describes

	mu struct {
		sync.Mutex // guards the fields below and every write to disk
		modules    map[key]*api.ModuleInfo
		closed     bool
	}
}

// Open opens (or creates) the registry in cfg.Dir and loads its index.
func Open(cfg Config) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Registry{cfg: cfg, sem: make(chan struct{}, cfg.ConcurrentDescribe)}
	r.mu.modules = map[key]*api.ModuleInfo{}
	for _, d := range []string{r.blobDir(), r.indexDir(), r.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("registry: creating %s: %w", d, err)
		}
	}
	// Files in tmp/ are writes a crash interrupted: never referenced.
	if ents, err := os.ReadDir(r.tmpDir()); err == nil {
		for _, e := range ents {
			os.Remove(filepath.Join(r.tmpDir(), e.Name()))
		}
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Registry) blobDir() string  { return filepath.Join(r.cfg.Dir, "blobs", "sha256") }
func (r *Registry) indexDir() string { return filepath.Join(r.cfg.Dir, "index") }
func (r *Registry) tmpDir() string   { return filepath.Join(r.cfg.Dir, "tmp") }

func (r *Registry) blobPath(digest string) string { return filepath.Join(r.blobDir(), digest) }

// load reads every index entry, checking each names a blob that exists.
func (r *Registry) load() error {
	return filepath.WalkDir(r.indexDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("registry: loading index: %w", err)
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("registry: loading index: %w", err)
		}
		var m api.ModuleInfo
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("registry: loading index entry %s: %w (move it away to start without it)", path, err)
		}
		rel, _ := filepath.Rel(r.indexDir(), path)
		want := filepath.Join(m.Tenant, m.Name, m.Version+".json")
		if rel != want || CheckName("tenant", m.Tenant) != nil || CheckName("name", m.Name) != nil ||
			CheckName("version", m.Version) != nil || CheckDigest(m.Digest) != nil {
			return fmt.Errorf("registry: index entry %s does not match its place (%s); move it away to start without it", path, want)
		}
		if _, err := os.Stat(r.blobPath(m.Digest)); err != nil {
			return fmt.Errorf("registry: index entry %s: module bytes missing: %w", path, err)
		}
		r.mu.modules[key{m.Tenant, m.Name, m.Version}] = &m
		return nil
	})
}

// MaxModuleBytes is the size limit of uploads.
func (r *Registry) MaxModuleBytes() int { return r.cfg.MaxModuleBytes }

// Put validates wasm and stores it as tenant's name@version. It returns the
// stored module and whether it is new: putting the same bytes under the
// same name@version again returns the existing one, other bytes fail with
// ErrExists. Nothing is written unless every check passes.
func (r *Registry) Put(ctx context.Context, tenant, name, version string, wasm []byte) (api.ModuleInfo, bool, error) {
	for _, c := range [][2]string{{"tenant", tenant}, {"name", name}, {"version", version}} {
		if err := CheckName(c[0], c[1]); err != nil {
			return api.ModuleInfo{}, false, err
		}
	}
	if len(wasm) > r.cfg.MaxModuleBytes {
		return api.ModuleInfo{}, false, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(wasm), r.cfg.MaxModuleBytes)
	}
	digest := modinfo.Digest(wasm)
	k := key{tenant, name, version}
	// A repeated upload needs no describe.
	if m, err := r.existing(k, digest); m != nil || err != nil {
		return derefOr(m), false, err
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return api.ModuleInfo{}, false, ctx.Err()
	}
	info, err := modinfo.Describe(ctx, wasm, r.cfg.Describe)
	<-r.sem
	if err != nil {
		if errors.Is(err, modinfo.ErrTooLarge) {
			return api.ModuleInfo{}, false, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return api.ModuleInfo{}, false, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	m := &api.ModuleInfo{
		Tenant: tenant, Name: name, Version: version, Digest: digest, Size: info.Size,
		ABI: info.ABI, SDK: info.SDK, Operators: info.Operators, Uploaded: r.cfg.Now().UTC(),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return api.ModuleInfo{}, false, ErrClosed
	}
	if old, ok := r.mu.modules[k]; ok { // raced with another upload
		if old.Digest == digest {
			return *old, false, nil
		}
		return api.ModuleInfo{}, false, existsErr(old, digest)
	}
	if _, err := os.Stat(r.blobPath(digest)); err != nil {
		if err := r.writeFile(r.blobDir(), digest, wasm); err != nil {
			return api.ModuleInfo{}, false, fmt.Errorf("registry: storing module %s@%s: %w", name, version, err)
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return api.ModuleInfo{}, false, err
	}
	dir := filepath.Join(r.indexDir(), tenant, name)
	if err := mkdirSync(r.indexDir(), filepath.Join(tenant, name)); err != nil {
		return api.ModuleInfo{}, false, fmt.Errorf("registry: storing module %s@%s: %w", name, version, err)
	}
	if err := r.writeFile(dir, version+".json", b); err != nil {
		return api.ModuleInfo{}, false, fmt.Errorf("registry: storing module %s@%s: %w", name, version, err)
	}
	r.mu.modules[k] = m
	return *m, true, nil
}

func derefOr(m *api.ModuleInfo) api.ModuleInfo {
	if m == nil {
		return api.ModuleInfo{}
	}
	return *m
}

func (r *Registry) existing(k key, digest string) (*api.ModuleInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return nil, ErrClosed
	}
	old, ok := r.mu.modules[k]
	switch {
	case !ok:
		return nil, nil
	case old.Digest == digest:
		return old, nil
	}
	return nil, existsErr(old, digest)
}

func existsErr(old *api.ModuleInfo, digest string) error {
	return fmt.Errorf("%w: %s@%s exists with digest %.12s, this upload has %.12s; versions are immutable, upload it under a new version",
		ErrExists, old.Name, old.Version, old.Digest, digest)
}

// writeFile writes b to dir/name through tmp/: write, fsync, rename, fsync
// dir.
func (r *Registry) writeFile(dir, name string, b []byte) error {
	f, err := os.CreateTemp(r.tmpDir(), name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// mkdirSync creates root/rel's missing folders and fsyncs each parent, so
// the new entries survive a crash.
func mkdirSync(root, rel string) error {
	dir := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(dir, part)
		if _, err := os.Stat(next); err != nil {
			if err := os.Mkdir(next, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := syncDir(dir); err != nil {
				return err
			}
		}
		dir = next
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// NotFoundError is what Get returns for a module or version that does not
// exist: it lists what does.
type NotFoundError struct {
	Name, Version string
	// Versions are the versions of Name, when Name exists.
	Versions []string
	// Names are the tenant's module names, when Name does not exist.
	Names []string
}

func (e *NotFoundError) Error() string {
	if len(e.Versions) > 0 {
		return fmt.Sprintf("no module %s@%s (versions of %s: %s)", e.Name, e.Version, e.Name, strings.Join(e.Versions, ", "))
	}
	hint := ""
	if best, d := suggest.Closest(e.Name, e.Names); best != "" && d <= max(1, len(e.Name)/3) {
		hint = fmt.Sprintf("; did you mean %q?", best)
	}
	if len(e.Names) == 0 {
		return fmt.Sprintf("no module %q: the registry has none; upload one with `weir module upload FILE.wasm --name %s --version %s`", e.Name, e.Name, e.Version)
	}
	return fmt.Sprintf("no module %q%s (modules: %s)", e.Name, hint, strings.Join(e.Names, ", "))
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// Get returns tenant's name@version, or a *NotFoundError saying which names
// or versions exist.
func (r *Registry) Get(tenant, name, version string) (api.ModuleInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.mu.modules[key{tenant, name, version}]; ok {
		return *m, nil
	}
	e := &NotFoundError{Name: name, Version: version}
	names := map[string]bool{}
	for k := range r.mu.modules {
		if k.tenant != tenant {
			continue
		}
		if k.name == name {
			e.Versions = append(e.Versions, k.version)
		}
		names[k.name] = true
	}
	if len(e.Versions) == 0 {
		for n := range names {
			e.Names = append(e.Names, n)
		}
		sort.Strings(e.Names)
	}
	sort.Slice(e.Versions, func(i, j int) bool { return LessVersion(e.Versions[i], e.Versions[j]) })
	return api.ModuleInfo{}, e
}

// List returns tenant's modules, all of them or those named name, sorted
// by name and version.
func (r *Registry) List(tenant, name string) []api.ModuleInfo {
	r.mu.Lock()
	out := []api.ModuleInfo{}
	for k, m := range r.mu.modules {
		if k.tenant == tenant && (name == "" || k.name == name) {
			out = append(out, *m)
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return LessVersion(out[i].Version, out[j].Version)
	})
	return out
}

// Len is the number of tenant's module versions.
func (r *Registry) Len(tenant string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k := range r.mu.modules {
		if k.tenant == tenant {
			n++
		}
	}
	return n
}

// OpenBlob opens the module bytes with the given digest. The caller closes
// the file.
func (r *Registry) OpenBlob(digest string) (*os.File, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, err
	}
	f, err := os.Open(r.blobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no module with digest %s", ErrNotFound, digest)
	}
	return f, err
}

// ReadBlob returns the module bytes with the given digest, checked against
// it.
func (r *Registry) ReadBlob(digest string) ([]byte, error) {
	f, err := r.OpenBlob(digest)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(r.cfg.MaxModuleBytes)+1))
	if err != nil {
		return nil, err
	}
	if modinfo.Digest(b) != digest {
		return nil, fmt.Errorf("registry: module bytes of %s on disk do not match their digest (disk corruption?)", digest)
	}
	return b, nil
}

// Close closes the registry; later Puts fail. It is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.mu.closed = true
	r.mu.Unlock()
	return nil
}

// LessVersion orders versions naturally: runs of digits compare as
// numbers, so 1.9 < 1.10 and v2 < v10; other runs compare as strings.
func LessVersion(a, b string) bool {
	for a != "" && b != "" {
		ra, rb := run(a), run(b)
		if ra != rb {
			da, db := isDigit(ra[0]), isDigit(rb[0])
			switch {
			case da && db:
				na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
				if len(na) != len(nb) {
					return len(na) < len(nb)
				}
				if na != nb {
					return na < nb
				}
			default:
				return ra < rb
			}
		}
		a, b = a[len(ra):], b[len(rb):]
	}
	return len(a) < len(b)
}

func run(s string) string {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
