package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/native"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

// MaxModuleSize bounds a module fetched from the coordinator.
const MaxModuleSize = 64 << 20

// modules is the worker's module cache: modules by content digest,
// fetched from the coordinator once, verified, kept on disk, and compiled
// once for every job that uses them.
type modules struct {
	dir    string
	rt     *wasmhost.Runtime
	client *http.Client
	native bool

	mu     sync.Mutex // held while a module is fetched and compiled
	url    string
	loaded map[string]*wasmhost.Module
}

func (m *modules) setURL(u string) {
	m.mu.Lock()
	m.url = strings.TrimSuffix(u, "/")
	m.mu.Unlock()
}

// Resolve finds an operator of a module by digest (task.Resolver).
func (m *modules) Resolve(ref deploy.ModuleRef) (*wasmabi.OperatorDesc, task.OperatorFactory, error) {
	if ref.Digest == deploy.Native {
		if !m.native {
			return nil, nil, errors.New("this worker runs no native operators (they are for benchmarks: weir worker --allow-native)")
		}
		f, desc, err := native.Factory(ref.Operator)
		return desc, f, err
	}
	mod, err := m.module(ref.Digest)
	if err != nil {
		return nil, nil, err
	}
	_, desc, ok := mod.Descriptor().Operator(ref.Operator)
	if !ok {
		return nil, nil, fmt.Errorf("module %s has no operator %q (it has: %v)", ref.Name, ref.Operator, mod.Descriptor().Names())
	}
	return desc, func(ctx context.Context, subtask int, svc task.Services) (task.Operator, error) {
		return mod.Instantiate(ctx, ref.Operator, svc)
	}, nil
}

func (m *modules) module(digest string) (*wasmhost.Module, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mod := m.loaded[digest]; mod != nil {
		return mod, nil
	}
	path := filepath.Join(m.dir, digest+".wasm")
	b, err := os.ReadFile(path)
	if err != nil || !matches(b, digest) {
		if b, err = m.fetch(digest); err != nil {
			return nil, err
		}
		if err := writeFile(path, b); err != nil {
			return nil, err
		}
	}
	mod, err := m.rt.Load(context.Background(), digest[:12]+".wasm", b)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", digest[:12], err)
	}
	m.loaded[digest] = mod
	return mod, nil
}

// fetch downloads a module by digest and checks its bytes against it.
func (m *modules) fetch(digest string) ([]byte, error) {
	if m.url == "" {
		return nil, fmt.Errorf("module %s is not cached and the coordinator named no module URL", digest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/"+digest, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching module %s: %w", digest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching module %s: %s", digest, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetching module %s: %w", digest, err)
	}
	if len(b) > MaxModuleSize {
		return nil, fmt.Errorf("fetching module %s: over %d bytes", digest, MaxModuleSize)
	}
	if !matches(b, digest) {
		return nil, fmt.Errorf("fetching module %s: the bytes do not match the digest", digest)
	}
	return b, nil
}

func matches(b []byte, digest string) bool {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) == digest
}

// writeFile writes b to path atomically.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".module-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
