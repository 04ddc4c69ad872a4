package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/viper"
	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/coordinator/dispatcher/dispatchertest"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/modinfo"
	"github.com/weirstream/weir/internal/modinfo/modinfotest"
	"github.com/weirstream/weir/wasmabi"
)

// cluster is a real Dispatcher over the fake Jobs, on a real port.
type cluster struct {
	d    *dispatcher.Dispatcher
	url  string
	jobs *dispatchertest.Jobs
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	jobs := &dispatchertest.Jobs{FinishAfter: 3}
	d, err := dispatcher.New(dispatcher.Config{Addr: "127.0.0.1:0", RegistryDir: t.TempDir(), Jobs: jobs, Version: "test",
		Workers: dispatchertest.NewWorkers(
			api.WorkerStatus{ID: "w1", Address: "127.0.0.1:7001", State: "alive", Slots: 4, SlotsUsed: 1, SlotsFree: 3},
			api.WorkerStatus{ID: "w2", Address: "127.0.0.1:7002", State: "alive", Slots: 2, SlotsFree: 2},
		)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(func() { srv.Close(); d.Close() })
	return &cluster{d: d, url: srv.URL, jobs: jobs}
}

// weirAt runs weir against the cluster, through WEIR_COORDINATOR.
func (c *cluster) weir(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(weirBin, args...)
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+cacheDir, "WEIR_COORDINATOR="+c.url)
	cmd.Dir = repoRoot
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running weir %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

func (c *cluster) mustWeir(t *testing.T, args ...string) result {
	t.Helper()
	r := c.weir(t, args...)
	if r.code != 0 {
		t.Fatalf("weir %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeWC(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	b := modinfotest.Module(t, modinfotest.Options{Operators: modinfotest.Ops("split:flat_map", "count:process")})
	path := filepath.Join(dir, "wc.wasm")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func TestModuleUploadList(t *testing.T) {
	c := startCluster(t)
	path, b := writeWC(t, t.TempDir())
	r := c.mustWeir(t, "module", "upload", path, "--name", "wordcount", "--version", "1.0")
	if want := "uploaded wordcount@1.0 (sha256 " + hexSHA(b)[:12]; !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "split (flat_map), count (process)") {
		t.Errorf("upload: %q, want prefix %q", r.stdout, want)
	}
	if r := c.mustWeir(t, "module", "upload", path, "--name", "wordcount", "--version", "1.0"); !strings.HasPrefix(r.stdout, "already there: wordcount@1.0") {
		t.Errorf("second upload: %q", r.stdout)
	}
	r = c.mustWeir(t, "module", "list", "-o", "json")
	var l struct{ Modules []api.ModuleInfo }
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Modules) != 1 || l.Modules[0].Digest != hexSHA(b) || l.Modules[0].Size != int64(len(b)) {
		t.Errorf("list json: %v %s", err, r.stdout)
	}
	r = c.mustWeir(t, "module", "list")
	if !regexp.MustCompile(`(?m)^NAME +VERSION +DIGEST.*\nwordcount +1\.0 +` + hexSHA(b)[:12]).MatchString(r.stdout) {
		t.Errorf("list table:\n%s", r.stdout)
	}
	// Refused: a bad version before anything is sent, a file that is not
	// a module by the coordinator.
	if r := c.weir(t, "module", "upload", path, "--name", "wordcount", "--version", "../1"); r.code != 2 || !strings.Contains(r.stderr, `".."`) {
		t.Errorf("bad version: %d %s", r.code, r.stderr)
	}
	junk := filepath.Join(t.TempDir(), "junk.wasm")
	os.WriteFile(junk, []byte("#!/bin/sh\n"), 0o644)
	if r := c.weir(t, "module", "upload", junk, "--version", "1"); r.code != 1 || !strings.Contains(r.stderr, "not a WebAssembly module") || !strings.Contains(r.stderr, "HTTP 400") {
		t.Errorf("junk: %d %s", r.code, r.stderr)
	}
}

const clusterSpec = `# a job for the cluster tests
name: wc
parallelism: 2
modules:
  wc: wc.wasm           # a local module: uploaded by submit
  up: {{UP}}
sources:
  - {uid: lines, connector: file, options: {path: sample.txt, format: lines}, parallelism: 1}
operators:
  - {uid: split, module: wc, operator: split, input: lines, parallelism: 1}
  - {uid: upper, module: up, operator: upper, input: split, parallelism: 1}
  - uid: count
    module: wc
    operator: count
    inputs: [{from: upper, partition: key_by}]
sinks:
  - {uid: out, connector: stdout, input: count, parallelism: 1}
`

// TestJobSubmitFollow submits a spec with a local .wasm and a C operator
// folder, follows the job to its end, and checks what the coordinator got.
func TestJobSubmitFollow(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	_, wc := writeWC(t, dir)
	os.WriteFile(filepath.Join(dir, "sample.txt"), []byte("a b\n"), 0o644)
	src, err := os.ReadFile(filepath.Join(repoRoot, "examples/c-upper/upper.c"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "upper"), 0o755)
	os.WriteFile(filepath.Join(dir, "upper", "upper.c"), src, 0o644)
	spec := strings.Replace(clusterSpec, "{{UP}}", `"./upper"`, 1)
	path := filepath.Join(dir, "job.yaml")
	os.WriteFile(path, []byte(spec), 0o644)

	r := c.mustWeir(t, "job", "submit", path, "--poll", "5ms")
	wcVersion := "sha256-" + hexSHA(wc)[:16]
	if !strings.Contains(r.stderr, "uploaded module wc.wasm as wc.wc@"+wcVersion) || !strings.Contains(r.stderr, "job job-0001: running") ||
		!strings.Contains(r.stderr, "job job-0001: finished") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, "state     finished") || !strings.Contains(r.stdout, "module    wc = wc.wc@"+wcVersion) {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	subs := c.jobs.Submissions()
	if len(subs) != 1 {
		t.Fatalf("%d submissions", len(subs))
	}
	got := string(subs[0].Spec)
	// Only the module values changed, in place: every line keeps its number.
	upInfo := subs[0].Modules["up"]
	want := strings.Replace(strings.Replace(spec, "wc: wc.wasm", "wc: wc.wc@"+wcVersion, 1), `"./upper"`, "wc.up@"+upInfo.Version, 1)
	if got != want {
		t.Errorf("spec sent:\n%s\nwant:\n%s", got, want)
	}
	if subs[0].Modules["wc"].Digest != hexSHA(wc) || upInfo.Name != "wc.up" || len(upInfo.Operators) != 4 {
		t.Errorf("modules: %+v", subs[0].Modules)
	}
	if subs[0].Job.Dir != dir {
		t.Errorf("Dir = %q, want %q", subs[0].Job.Dir, dir)
	}
	// Submitting again uploads nothing new.
	if r := c.mustWeir(t, "job", "submit", path, "--detached"); strings.Contains(r.stderr, "uploaded") || !strings.HasPrefix(r.stdout, "submitted job job-0002") {
		t.Errorf("second submit: %s %s", r.stdout, r.stderr)
	}
}

func TestJobManage(t *testing.T) {
	c := startCluster(t)
	c.jobs.SetSteps(0, 0)
	dir := t.TempDir()
	path := writeWCClusterJob(t, dir)
	r := c.mustWeir(t, "job", "submit", path, "--detached", "-o", "json")
	var st api.JobStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.ID == "" || st.State != api.StateCreated {
		t.Fatalf("submit json: %v %s", err, r.stdout)
	}
	r = c.mustWeir(t, "job", "info", st.ID)
	if !strings.Contains(r.stdout, "state     running") || !regexp.MustCompile(`(?m)^TASK +SUBTASK +STATE +WORKER`).MatchString(r.stdout) || !strings.Contains(r.stdout, "worker-1") {
		t.Errorf("info:\n%s", r.stdout)
	}
	r = c.mustWeir(t, "job", "list")
	if !regexp.MustCompile(`(?m)^` + st.ID + ` +wc +running`).MatchString(r.stdout) {
		t.Errorf("list:\n%s", r.stdout)
	}
	if r := c.mustWeir(t, "job", "cancel", st.ID); r.stdout != "job "+st.ID+": canceled\n" {
		t.Errorf("cancel: %q", r.stdout)
	}
	if r := c.weir(t, "job", "cancel", st.ID); r.code != 1 || !strings.Contains(r.stderr, "already ended") || !strings.Contains(r.stderr, "HTTP 409") {
		t.Errorf("cancel again: %d %s", r.code, r.stderr)
	}
	r = c.mustWeir(t, "job", "submit", path, "--detached", "-o", "json")
	json.Unmarshal([]byte(r.stdout), &st)
	if r := c.mustWeir(t, "job", "stop", st.ID, "-o", "json"); !strings.Contains(r.stdout, `"state": "finished"`) {
		t.Errorf("stop: %s", r.stdout)
	}
	if r := c.weir(t, "job", "info", "job-9999"); r.code != 1 || !strings.Contains(r.stderr, "no job job-9999") {
		t.Errorf("info of a missing job: %d %s", r.code, r.stderr)
	}
	// A job that fails while followed ends the command with status 1 and
	// the reason.
	c.jobs.SetSteps(0, 2)
	r = c.weir(t, "job", "submit", path, "--poll", "5ms")
	if r.code != 1 || !strings.Contains(r.stderr, "job job-0003 failed: subtask 0 failed: the module trapped") || !strings.Contains(r.stdout, "state     failed") {
		t.Errorf("followed failure: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestJobSubmitProblems: the coordinator's problems are printed against
// the user's file, at the lines of that file.
func TestJobSubmitProblems(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	path, _ := writeWC(t, dir)
	c.mustWeir(t, "module", "upload", path, "--name", "upper", "--version", "1.0")
	spec := strings.Replace(clusterSpec, "{{UP}}", "upper@2.0", 1)
	jobPath := filepath.Join(dir, "job.yaml")
	os.WriteFile(jobPath, []byte(spec), 0o644)
	r := c.weir(t, "job", "submit", jobPath)
	// upper@2.0 does not exist (line 6); the wc module does but has no
	// operator "upper" — the first problem stops the planner, so one.
	if want := jobPath + ":6:3: modules.up: no module upper@2.0 (versions of upper: 1.0)"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant %q", r.code, r.stderr, want)
	}
	if len(c.jobs.Submissions()) != 0 {
		t.Error("a refused spec reached Jobs.Submit")
	}
}

func TestClusterStatus(t *testing.T) {
	c := startCluster(t)
	r := c.mustWeir(t, "cluster", "status")
	if !strings.Contains(r.stdout, "workers     2 alive, slots 5 free of 6") || !regexp.MustCompile(`(?m)^w1 +127\.0\.0\.1:7001 +alive +4 +1 +3`).MatchString(r.stdout) {
		t.Errorf("status:\n%s", r.stdout)
	}
	r = c.mustWeir(t, "cluster", "status", "-o", "json")
	var out struct {
		Overview api.Overview
		Workers  []api.WorkerStatus
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Overview.SlotsTotal != 6 || len(out.Workers) != 2 {
		t.Errorf("json: %v %s", err, r.stdout)
	}
	// The flag wins over the environment; a coordinator that is not there
	// is named with what to do.
	if r := c.weir(t, "cluster", "status", "--coordinator", "http://127.0.0.1:1"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach the coordinator at http://127.0.0.1:1") {
		t.Errorf("unreachable: %d %s", r.code, r.stderr)
	}
	if r := c.weir(t, "cluster", "status", "--coordinator", "ftp://x"); r.code != 2 {
		t.Errorf("bad URL: %d %s", r.code, r.stderr)
	}
}

// writeWCClusterJob writes the word-count module into dir and a cluster
// job spec using it (clusterSpec with the word count's operators only),
// and returns the spec's path.
func writeWCClusterJob(t *testing.T, dir string) string {
	t.Helper()
	writeWC(t, dir)
	spec := strings.Replace(strings.Replace(clusterSpec, "  up: {{UP}}\n", "", 1), "module: up,", "module: wc,", 1)
	spec = strings.Replace(spec, "operator: upper", "operator: split", 1)
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSubmitInProcess is application mode's path: the spec's modules go
// straight into the coordinator's registry and the job to Dispatcher.Submit.
func TestSubmitInProcess(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	_, wc := writeWC(t, dir)
	spec := strings.Replace(strings.Replace(clusterSpec, "  up: {{UP}}\n", "", 1), "module: up,", "module: wc,", 1)
	spec = strings.Replace(spec, "operator: upper", "operator: split", 1)
	path := filepath.Join(dir, "job.yaml")
	os.WriteFile(path, []byte(spec), 0o644)
	var stderr bytes.Buffer
	a := &app{stdout: io.Discard, stderr: &stderr, cfg: viper.New()}
	a.cfg.Set("cache-dir", cacheDir)
	a.cfg.Set("output", "text")
	ctx := context.Background()
	req, err := a.submission(ctx, registryUploader{c.d.Registry(), api.DefaultTenant}, path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.d.Submit(ctx, api.DefaultTenant, req)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != api.StateCreated || st.Modules["wc"].Digest != hexSHA(wc) {
		t.Errorf("status %+v", st)
	}
	// A bad spec comes back as an *api.Error with its problems.
	req.Spec = strings.Replace(req.Spec, "operator: count", "operator: cnt", 1)
	_, err = c.d.Submit(ctx, api.DefaultTenant, req)
	var ae *api.Error
	if !errors.As(err, &ae) || len(ae.Problems) != 1 || !strings.Contains(ae.Problems[0].Message, `no operator "cnt"`) {
		t.Errorf("bad spec: %v", err)
	}
}

func TestRewriteModules(t *testing.T) {
	src := "name: j   # c\nmodules: {a: ./a.wasm, b: \"b c.wasm\", keep: x@1}\n# comment\nmodules2: z\n"
	got, err := rewriteModules([]byte(src), map[string]string{"a": "j.a@sha256-1", "b": "j.b@v2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "name: j   # c\nmodules: {a: j.a@sha256-1, b: j.b@v2, keep: x@1}\n# comment\nmodules2: z\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	src = "modules:\n  a: 'it''s.wasm'  # q\n  b: |\n    multi\n"
	got, err = rewriteModules([]byte(src), map[string]string{"a": "j.a@1"})
	if err != nil || string(got) != "modules:\n  a: j.a@1  # q\n  b: |\n    multi\n" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := rewriteModules([]byte(src), map[string]string{"b": "j.b@1"}); err == nil {
		t.Error("a block scalar path was rewritten")
	}
}

// TestInspectAgreesWithRegistry checks the two describes — the worker's
// host (weir module inspect) and the registry's sandbox (internal/modinfo)
// — read the same operators and imports from a module.
func TestInspectAgreesWithRegistry(t *testing.T) {
	ops := modinfotest.Ops("a:map", "b:aggregate", "c:co_process")
	ops[2].SideOutputs = []string{"late", "odd"}
	b := modinfotest.Module(t, modinfotest.Options{Operators: ops, Imports: `(import "weir" "log" (func (param i32 i32 i32)))`})
	path := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(path, b, 0o644)
	r := mustWeir(t, "module", "inspect", path, "-o", "json")
	var inspected struct {
		ABI       int                    `json:"abi"`
		Operators []wasmabi.OperatorDesc `json:"operators"`
		Imports   []string               `json:"imports"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &inspected); err != nil {
		t.Fatal(err)
	}
	info, err := modinfo.Describe(context.Background(), b, modinfo.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(inspected.Imports)
	if inspected.ABI != info.ABI || !reflect.DeepEqual(inspected.Operators, info.Operators) || !reflect.DeepEqual(inspected.Imports, info.Imports) {
		t.Errorf("inspect: %+v\nmodinfo: %+v", inspected, info)
	}
	if !reflect.DeepEqual(info.Operators, ops) {
		t.Errorf("operators %+v, want %+v", info.Operators, ops)
	}
}
