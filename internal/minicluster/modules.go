package minicluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/native"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

// Modules resolves the operators a job spec names: it builds module
// folders (internal/modbuild), loads .wasm files into one wazero runtime,
// or, in native mode, uses the operators linked into this binary. It is
// the planner's Resolver.
type Modules struct {
	job      *jobspec.Job
	rt       *wasmhost.Runtime
	native   bool
	cacheDir string
	buildLog io.Writer
	loaded   map[string]*wasmhost.Module // by spec name
	digests  map[string]string           // spec name -> digest
	byDigest map[string]*wasmhost.Module
}

// NewModules returns a resolver for job's modules. rt may be nil in native
// mode.
func NewModules(job *jobspec.Job, rt *wasmhost.Runtime, native bool, cacheDir string, buildLog io.Writer) *Modules {
	return &Modules{job: job, rt: rt, native: native, cacheDir: cacheDir, buildLog: buildLog, loaded: map[string]*wasmhost.Module{}, digests: map[string]string{}, byDigest: map[string]*wasmhost.Module{}}
}

// load builds (if a folder) and loads a module, once.
func (m *Modules) load(ctx context.Context, name string) (*wasmhost.Module, error) {
	if mod, ok := m.loaded[name]; ok {
		return mod, nil
	}
	spec := m.job.Module(name)
	if spec == nil {
		return nil, fmt.Errorf("no module %q in the spec", name)
	}
	path := spec.Resolved
	if spec.IsDir {
		res, err := modbuild.Build(ctx, modbuild.Options{Dir: spec.Resolved, CacheDir: m.cacheDir, Log: m.buildLog})
		if err != nil {
			return nil, m.job.Errorf(spec.Field, "building module %s: %v", spec.Path, err)
		}
		path = res.Out
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, m.job.Errorf(spec.Field, "module %s does not exist (build one with `weir module build DIR`, or name the folder)", spec.Path)
		}
		return nil, m.job.Errorf(spec.Field, "module %s: %v", spec.Path, err)
	}
	mod, err := m.rt.Load(ctx, filepath.Base(path), b)
	if err != nil {
		var werr *wasmhost.Error
		if errors.As(err, &werr) {
			return nil, m.job.Errorf(spec.Field, "%v", err) // it names the module and stage itself
		}
		return nil, m.job.Errorf(spec.Field, "module %s: %v", spec.Path, err)
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	m.loaded[name], m.digests[name], m.byDigest[digest] = mod, digest, mod
	return mod, nil
}

// Digest returns the content digest of a spec module (deploy.Native in
// native mode), for deployment descriptors.
func (m *Modules) Digest(name string) (digest, display string, err error) {
	if m.native {
		return deploy.Native, name, nil
	}
	if _, err := m.load(context.Background(), name); err != nil {
		return "", "", err
	}
	display = name
	if spec := m.job.Module(name); spec != nil {
		display = spec.Path
	}
	return m.digests[name], display, nil
}

// Operator returns the description of an operator (plan.Resolver).
func (m *Modules) Operator(module, operator string) (*wasmabi.OperatorDesc, error) {
	if m.native {
		_, desc, err := native.Factory(operator)
		return desc, err
	}
	mod, err := m.load(context.Background(), module)
	if err != nil {
		return nil, err
	}
	_, desc, ok := mod.Descriptor().Operator(operator)
	if !ok {
		return nil, fmt.Errorf("module %s has no operator %q (it has: %v)", module, operator, mod.Descriptor().Names())
	}
	return desc, nil
}

// Resolve resolves a descriptor's operator by module digest
// (task.Resolver).
func (m *Modules) Resolve(ref deploy.ModuleRef) (*wasmabi.OperatorDesc, task.OperatorFactory, error) {
	if ref.Digest == deploy.Native {
		f, desc, err := native.Factory(ref.Operator)
		return desc, f, err
	}
	mod := m.byDigest[ref.Digest]
	if mod == nil {
		return nil, nil, fmt.Errorf("no module with digest %s", ref.Digest)
	}
	_, desc, ok := mod.Descriptor().Operator(ref.Operator)
	if !ok {
		return nil, nil, fmt.Errorf("module %s has no operator %q (it has: %v)", ref.Name, ref.Operator, mod.Descriptor().Names())
	}
	return desc, func(ctx context.Context, subtask int, svc task.Services) (task.Operator, error) {
		return mod.Instantiate(ctx, ref.Operator, svc)
	}, nil
}
