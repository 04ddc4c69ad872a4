package dispatcher_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/coordinator/dispatcher/dispatchertest"
	"github.com/weirstream/weir/coordinator/registry"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/modinfo/modinfotest"
	"github.com/weirstream/weir/wasmabi"
)

type env struct {
	d       *dispatcher.Dispatcher
	srv     *httptest.Server
	jobs    *dispatchertest.Jobs
	regDir  string
	workers *dispatchertest.Workers
}

func newEnv(t *testing.T, mod func(*dispatcher.Config)) *env {
	t.Helper()
	e := &env{jobs: &dispatchertest.Jobs{}, regDir: t.TempDir(), workers: dispatchertest.NewWorkers(
		api.WorkerStatus{ID: "w1", Address: "127.0.0.1:7001", State: "alive", Slots: 4, SlotsUsed: 1, SlotsFree: 3},
		api.WorkerStatus{ID: "w2", Address: "127.0.0.1:7002", State: "alive", Slots: 2, SlotsFree: 2},
		api.WorkerStatus{ID: "w3", Address: "127.0.0.1:7003", State: "dead", Slots: 8},
	)}
	cfg := dispatcher.Config{Addr: "127.0.0.1:0", RegistryDir: e.regDir, Jobs: e.jobs, Workers: e.workers, Version: "test"}
	if mod != nil {
		mod(&cfg)
	}
	d, err := dispatcher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	e.srv = httptest.NewServer(d.Handler())
	t.Cleanup(func() { e.srv.Close(); d.Close() })
	return e
}

// do sends a request and decodes a JSON answer into out (if not nil),
// checking that every answer is JSON and every error an api.Error.
func (e *env) do(t *testing.T, method, path, ctype string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, b)
	}
	if resp.StatusCode >= 400 {
		var ae api.Error
		if err := json.Unmarshal(b, &ae); err != nil || ae.Message == "" {
			t.Fatalf("%s %s: %d with a body that is not an api.Error: %s", method, path, resp.StatusCode, b)
		}
		if strings.Contains(string(b), "goroutine ") || strings.Contains(string(b), ".go:") {
			t.Fatalf("%s %s: the answer shows a stack: %s", method, path, b)
		}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func (e *env) upload(t *testing.T, name, version string, wasm []byte) (api.ModuleInfo, int) {
	t.Helper()
	var m api.ModuleInfo
	code := e.do(t, "POST", "/v1/modules?name="+name+"&version="+version, "application/wasm", wasm, &m)
	return m, code
}

func submitBody(t *testing.T, spec string) []byte {
	b, err := json.Marshal(api.SubmitRequest{Spec: spec, File: "job.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const spec = `name: wc
parallelism: 2
modules:
  wc: wordcount@1.0
sources:
  - {uid: gen, connector: datagen, options: {count: 10, keys: 3}, parallelism: 1}
operators:
  - {uid: split, module: wc, operator: split, input: gen, parallelism: 1}
  - uid: count
    module: wc
    operator: count
    inputs: [{from: split, partition: key_by}]
sinks:
  - {uid: out, connector: stdout, input: count, parallelism: 1}
`

func wcModule(t *testing.T, salt string) []byte {
	return modinfotest.Module(t, modinfotest.Options{Operators: modinfotest.Ops("split:flat_map", "count:process"), Salt: salt})
}

func TestModules(t *testing.T) {
	e := newEnv(t, nil)
	b := wcModule(t, "")
	m, code := e.upload(t, "wordcount", "1.0", b)
	sum := sha256.Sum256(b)
	if code != http.StatusCreated || m.Digest != hex.EncodeToString(sum[:]) || m.Tenant != api.DefaultTenant || len(m.Operators) != 2 {
		t.Fatalf("upload: %d %+v", code, m)
	}
	if _, code := e.upload(t, "wordcount", "1.0", b); code != http.StatusOK {
		t.Errorf("repeated upload: %d, want 200", code)
	}
	if _, code := e.upload(t, "wordcount", "1.0", wcModule(t, "x")); code != http.StatusConflict {
		t.Errorf("conflicting upload: %d, want 409", code)
	}
	e.upload(t, "wordcount", "1.10", wcModule(t, "y"))
	e.upload(t, "wordcount", "1.9", wcModule(t, "z"))

	var list struct{ Modules []api.ModuleInfo }
	if code := e.do(t, "GET", "/v1/modules", "", nil, &list); code != 200 || len(list.Modules) != 3 ||
		list.Modules[0].Version != "1.0" || list.Modules[1].Version != "1.9" || list.Modules[2].Version != "1.10" {
		t.Errorf("list: %d %+v", code, list)
	}
	var got api.ModuleInfo
	if code := e.do(t, "GET", "/v1/modules/wordcount/1.0", "", nil, &got); code != 200 || got.Digest != m.Digest {
		t.Errorf("get: %d %+v", code, got)
	}
	var ae api.Error
	if code := e.do(t, "GET", "/v1/modules/wordcount/2.0", "", nil, &ae); code != 404 || !strings.Contains(ae.Message, "1.0, 1.9, 1.10") {
		t.Errorf("get missing version: %d %+v", code, ae)
	}

	// Workers fetch the bytes by digest.
	resp, err := http.Get(e.srv.URL + "/v1/modules/by-digest/" + m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	fetched, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(fetched, b) || resp.Header.Get("Content-Type") != "application/wasm" {
		t.Errorf("by-digest: %d, %d bytes, %s", resp.StatusCode, len(fetched), resp.Header.Get("Content-Type"))
	}
	if code := e.do(t, "GET", "/v1/modules/by-digest/"+strings.Repeat("0", 64), "", nil, nil); code != 404 {
		t.Errorf("by-digest of an unknown digest: %d", code)
	}
	if code := e.do(t, "GET", "/v1/modules/by-digest/..%2F..%2Fetc", "", nil, nil); code != 400 {
		t.Errorf("by-digest of a path: %d", code)
	}
}

// TestUploadRefuses checks that bad uploads are refused with 4xx and
// leave nothing in the registry's folder.
func TestUploadRefuses(t *testing.T) {
	e := newEnv(t, func(c *dispatcher.Config) { c.MaxModuleBytes = 8 << 10 })
	valid := wcModule(t, "")
	cases := []struct {
		query, ctype string
		body         []byte
		status       int
		field, msg   string
	}{
		{"name=..&version=1", "application/wasm", valid, 400, "name", `".."`},
		{"name=a%2Fb&version=1", "application/wasm", valid, 400, "name", "only letters"},
		{"name=wc&version=..%2F..%2Fx", "application/wasm", valid, 400, "version", `".."`},
		{"name=wc&version=1.0%00", "application/wasm", valid, 400, "version", "only letters"},
		{"name=wc", "application/wasm", valid, 400, "version", "empty version"},
		{"name=wc&version=1&tenant=x", "application/wasm", valid, 400, "tenant", "unknown query parameter"},
		{"name=wc&version=1", "text/plain", valid, 415, "", "application/wasm"},
		{"name=wc&version=1", "application/wasm", []byte("#!/bin/sh\nrm -rf /\n"), 400, "", "not a WebAssembly module"},
		{"name=wc&version=1", "application/wasm", nil, 400, "", "not a WebAssembly module"},
		{"name=wc&version=1", "application/wasm", modinfotest.Module(t, modinfotest.Options{Version: "(i32.const 2)"}), 400, "", "ABI v2"},
		{"name=wc&version=1", "application/wasm", append(valid, make([]byte, 9<<10)...), 413, "", "limit"},
	}
	for _, c := range cases {
		var ae api.Error
		code := e.do(t, "POST", "/v1/modules?"+c.query, c.ctype, c.body, &ae)
		if code != c.status || ae.Field != c.field || !strings.Contains(ae.Message, c.msg) {
			t.Errorf("%s: %d %+v; want %d, field %q, message with %q", c.query, code, ae, c.status, c.field, c.msg)
		}
	}
	var stored []string
	filepath.WalkDir(e.regDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			stored = append(stored, p)
		}
		return nil
	})
	if len(stored) != 0 {
		t.Errorf("refused uploads left files: %v", stored)
	}
}

func TestJobs(t *testing.T) {
	e := newEnv(t, nil)
	m, _ := e.upload(t, "wordcount", "1.0", wcModule(t, ""))
	var st api.JobStatus
	if code := e.do(t, "POST", "/v1/jobs", "application/json", submitBody(t, spec), &st); code != http.StatusCreated {
		t.Fatalf("submit: %d %+v", code, st)
	}
	// gen, split (chained: same parallelism, forward), count x2, out (chained to count? parallelism 1 vs 2: no).
	if st.State != api.StateCreated || st.Name != "wc" || st.Modules["wc"].Digest != m.Digest || len(st.Plan) == 0 {
		t.Errorf("submitted: %+v", st)
	}
	subs := e.jobs.Submissions()
	if len(subs) != 1 || subs[0].Job.Module("wc").Registry.Digest != m.Digest || subs[0].Plan == nil || subs[0].Tenant != api.DefaultTenant {
		t.Fatalf("submissions: %+v", subs)
	}
	// The plan the Jobs got is the one the spec describes: 1 + 2 + 1
	// subtasks (gen+split chained, count, out).
	n := 0
	for _, v := range subs[0].Plan.Vertices {
		n += len(v.Subtasks)
	}
	if n != 4 || len(st.Subtasks) != 4 {
		t.Errorf("%d plan subtasks, %d in the status; want 4", n, len(st.Subtasks))
	}

	var got api.JobStatus
	if code := e.do(t, "GET", "/v1/jobs/"+st.ID, "", nil, &got); code != 200 || got.State != api.StateRunning || got.Subtasks[0].Worker == "" {
		t.Errorf("get: %d %+v", code, got)
	}
	var list struct{ Jobs []api.JobStatus }
	if code := e.do(t, "GET", "/v1/jobs", "", nil, &list); code != 200 || len(list.Jobs) != 1 || list.Jobs[0].Subtasks != nil || list.Jobs[0].Plan != nil {
		t.Errorf("list: %d %+v", code, list)
	}
	var ov api.Overview
	if code := e.do(t, "GET", "/v1/overview", "", nil, &ov); code != 200 || ov.Workers != 2 || ov.SlotsTotal != 6 || ov.SlotsFree != 5 || ov.Jobs[api.StateRunning] != 1 || ov.Modules != 1 {
		t.Errorf("overview: %d %+v", code, ov)
	}
	var ws struct{ Workers []api.WorkerStatus }
	if code := e.do(t, "GET", "/v1/workers", "", nil, &ws); code != 200 || len(ws.Workers) != 3 {
		t.Errorf("workers: %d %+v", code, ws)
	}

	var ae api.Error
	if code := e.do(t, "PATCH", "/v1/jobs/"+st.ID, "", nil, &ae); code != 400 || ae.Field != "mode" {
		t.Errorf("patch without mode: %d %+v", code, ae)
	}
	if code := e.do(t, "PATCH", "/v1/jobs/"+st.ID+"?mode=explode", "", nil, &ae); code != 400 || ae.Field != "mode" {
		t.Errorf("patch with a bad mode: %d %+v", code, ae)
	}
	if code := e.do(t, "PATCH", "/v1/jobs/"+st.ID+"?mode=cancel", "", nil, &got); code != 202 || got.State != api.StateCanceled {
		t.Errorf("cancel: %d %+v", code, got)
	}
	if code := e.do(t, "PATCH", "/v1/jobs/"+st.ID+"?mode=cancel", "", nil, &ae); code != 409 {
		t.Errorf("cancel twice: %d %+v", code, ae)
	}
	e.do(t, "POST", "/v1/jobs", "application/json", submitBody(t, spec), &st)
	if code := e.do(t, "POST", "/v1/jobs/"+st.ID+"/stop", "", nil, &got); code != 202 || got.State != api.StateFinished {
		t.Errorf("stop: %d %+v", code, got)
	}
	for _, p := range []string{"/v1/jobs/job-9999", "/v1/jobs/job-9999/stop"} {
		method := "GET"
		if strings.HasSuffix(p, "stop") {
			method = "POST"
		}
		if code := e.do(t, method, p, "", nil, &ae); code != 404 {
			t.Errorf("%s %s: %d", method, p, code)
		}
	}
	if code := e.do(t, "GET", "/v1/jobs/a%20b", "", nil, &ae); code != 400 || ae.Field != "id" {
		t.Errorf("malformed id: %d %+v", code, ae)
	}
}

// TestSubmitRefuses checks specs the registry or the planner refuse: each
// problem comes back with its line.
func TestSubmitRefuses(t *testing.T) {
	e := newEnv(t, nil)
	e.upload(t, "wordcount", "1.0", wcModule(t, ""))
	e.upload(t, "wordcount", "1.1", wcModule(t, "1.1"))
	cases := []struct {
		name, spec string
		line       int
		msg        string
	}{
		{"missing version", strings.Replace(spec, "wordcount@1.0", "wordcount@2.0", 1), 4, "versions of wordcount: 1.0, 1.1"},
		{"missing module", strings.Replace(spec, "wordcount@1.0", "wordcont@1.0", 1), 4, `did you mean "wordcount"`},
		{"local path", strings.Replace(spec, "wordcount@1.0", "./wc.wasm", 1), 4, "weir job submit"},
		{"unknown operator", strings.Replace(spec, "operator: count", "operator: cnt", 1), 11, "it has: split, count"},
		{"bad yaml", "name: [", 2, ""},
		{"unknown field", spec + "colour: blue\n", 15, "colour"},
	}
	for _, c := range cases {
		var ae api.Error
		code := e.do(t, "POST", "/v1/jobs", "application/json", submitBody(t, c.spec), &ae)
		if code != 400 || len(ae.Problems) == 0 || ae.Problems[0].Line != c.line || !strings.Contains(ae.Problems[0].Message, c.msg) {
			t.Errorf("%s: %d %+v; want 400 with a problem at line %d containing %q", c.name, code, ae, c.line, c.msg)
		}
	}
	if n := len(e.jobs.Submissions()); n != 0 {
		t.Errorf("%d refused specs reached Jobs.Submit", n)
	}
	// Jobs' own errors choose the status.
	e.jobs.SetFailSubmit(fmt.Errorf("%w: the job needs 9 slots, the cluster has 6", dispatcher.ErrInvalid))
	var ae api.Error
	if code := e.do(t, "POST", "/v1/jobs", "application/json", submitBody(t, spec), &ae); code != 400 || !strings.Contains(ae.Message, "9 slots") {
		t.Errorf("Jobs' ErrInvalid: %d %+v", code, ae)
	}
	e.jobs.SetFailSubmit(fmt.Errorf("%w: shutting down", dispatcher.ErrUnavailable))
	if code := e.do(t, "POST", "/v1/jobs", "application/json", submitBody(t, spec), &ae); code != 503 {
		t.Errorf("Jobs' ErrUnavailable: %d %+v", code, ae)
	}
}

// TestMalformedBodies sends bodies that are not a SubmitRequest: each gets
// a 4xx with a message, never a 500.
func TestMalformedBodies(t *testing.T) {
	e := newEnv(t, func(c *dispatcher.Config) { c.MaxBodyBytes = 4 << 10 })
	cases := []struct {
		ctype, body string
		status      int
		field, msg  string
	}{
		{"application/json", "", 400, "", "empty"},
		{"application/json", "   ", 400, "", "empty"},
		{"application/json", "{", 400, "", "middle of a JSON value"},
		{"application/json", "{]", 400, "", "not valid JSON"},
		{"application/json", "[]", 400, "", "want a object"},
		{"application/json", "null", 400, "spec", "spec is empty"},
		{"application/json", `"spec"`, 400, "", "JSON string"},
		{"application/json", `{"spec": 5}`, 400, "spec", "want a string"},
		{"application/json", `{"spek": "name: x"}`, 400, "spek", `unknown field "spek"`},
		{"application/json", `{"spec": ""}`, 400, "spec", "empty"},
		{"application/json", `{"spec": "name: x"} {"spec": "name: y"}`, 400, "", "more than one JSON value"},
		{"application/json", `{"spec": "name: x", "dir": "relative/dir"}`, 400, "dir", "absolute"},
		{"application/json", `{"spec": "name: x\u0000"}`, 400, "", ""},
		{"application/json", `{"spec": "` + strings.Repeat("a", 5<<10) + `"}`, 413, "", "larger than"},
		{"text/yaml", `name: x`, 415, "", "application/json"},
	}
	for _, c := range cases {
		var ae api.Error
		code := e.do(t, "POST", "/v1/jobs", c.ctype, []byte(c.body), &ae)
		if code != c.status || ae.Field != c.field || !strings.Contains(ae.Message, c.msg) {
			t.Errorf("body %.40q: %d %+v; want %d, field %q, message with %q", c.body, code, ae, c.status, c.field, c.msg)
		}
	}
}

func FuzzSubmitBody(f *testing.F) {
	f.Add([]byte(`{"spec": "name: x"}`))
	f.Add([]byte(`{"spec": "name: x\nmodules: {a: b@1}\n"}`))
	f.Add(submitBody(&testing.T{}, spec))
	reg, err := registry.Open(registry.Config{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	h, err := dispatcher.NewHandler(dispatcher.Config{Jobs: &dispatchertest.Jobs{}, Workers: dispatchertest.NewWorkers()}, reg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/jobs", bytes.NewReader(body)))
		if rec.Code >= 500 || rec.Code < 400 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var ae api.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil || ae.Message == "" {
			t.Fatalf("not an api.Error: %s", rec.Body)
		}
	})
}

func FuzzUpload(f *testing.F) {
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, "wc", "1.0")
	f.Add([]byte("(module)"), "..", "1")
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0}, "a", "b/c")
	reg, err := registry.Open(registry.Config{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	h, err := dispatcher.NewHandler(dispatcher.Config{Jobs: &dispatchertest.Jobs{}, Workers: dispatchertest.NewWorkers()}, reg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, name, version string) {
		rec := httptest.NewRecorder()
		q := url.Values{"name": {name}, "version": {version}}
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/modules?"+q.Encode(), bytes.NewReader(body)))
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q as %q@%q: %s", rec.Code, body, name, version, rec.Body)
		}
	})
}

// TestUploadTurns checks that uploads beyond ConcurrentUploads wait for a
// turn before their bodies are read.
func TestUploadTurns(t *testing.T) {
	reg, err := registry.Open(registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := dispatcher.NewHandler(dispatcher.Config{Jobs: &dispatchertest.Jobs{}, Workers: dispatchertest.NewWorkers(), ConcurrentUploads: 1}, reg)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	first := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/modules?name=a&version=1", pr))
		first <- rec.Code
	}()
	// Once the handler reads the first byte, the first upload holds the turn.
	if _, err := pw.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/modules?name=b&version=1", strings.NewReader("x")).WithContext(ctx))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("second upload while the first holds the turn: %d %s", rec.Code, rec.Body)
	}
	pw.Write([]byte("asm"))
	pw.Close()
	if code := <-first; code != http.StatusBadRequest { // 4 bytes are not a module
		t.Errorf("first upload: %d", code)
	}
	// The turn is free again.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/modules?name=b&version=1", strings.NewReader("x")))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("upload after the turn was freed: %d %s", rec.Code, rec.Body)
	}
}

func TestInternalMount(t *testing.T) {
	e := newEnv(t, func(c *dispatcher.Config) {
		c.Internal = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "internal "+r.URL.Path) })
	})
	resp, err := http.Get(e.srv.URL + "/internal/heartbeat")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "internal /internal/heartbeat" {
		t.Errorf("got %q", b)
	}
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t, nil)
	var ae api.Error
	if code := e.do(t, "GET", "/v1/nothing", "", nil, &ae); code != 404 || !strings.Contains(ae.Message, "openapi.json") {
		t.Errorf("unknown path: %d %+v", code, ae)
	}
	req, _ := http.NewRequest("DELETE", e.srv.URL+"/v1/jobs", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE /v1/jobs: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// panicky is a Jobs whose List panics.
type panicky struct{ dispatchertest.Jobs }

func (*panicky) List(context.Context, string) ([]api.JobStatus, error) { panic("boom at jobs.go:12") }

func TestPanicIsA500WithoutStack(t *testing.T) {
	reg := t.TempDir()
	d, err := dispatcher.New(dispatcher.Config{Addr: "127.0.0.1:0", RegistryDir: reg, Jobs: &panicky{}, Workers: dispatchertest.NewWorkers()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(b), "boom") || strings.Contains(string(b), "goroutine") {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}

// TestOpenAPI checks the document lists exactly the routes the mux
// serves, that every route it lists is served (not the 404 fallback), and
// that every $ref resolves.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t, nil)
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	resp, err := http.Get(e.srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(raw, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v (version %q)", err, doc.OpenAPI)
	}
	var documented, served []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	for _, r := range e.d.Routes() {
		served = append(served, r.Method+" "+r.Pattern)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Errorf("openapi.json lists\n%s\nthe mux serves\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	// Every documented route reaches a handler of its own.
	fill := regexp.MustCompile(`\{[a-z]+\}`)
	for _, r := range documented {
		method, path, _ := strings.Cut(r, " ")
		path = fill.ReplaceAllString(path, "x1")
		req, _ := http.NewRequest(method, e.srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 405 || strings.Contains(string(b), "no route") {
			t.Errorf("%s %s is documented but not served: %d %s", method, path, resp.StatusCode, b)
		}
	}
	for _, m := range regexp.MustCompile(`"\$ref": "#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(string(raw), -1) {
		if _, ok := doc.Components.Schemas[m[1]]; !ok {
			t.Errorf("$ref to a missing schema %s", m[1])
		}
	}
}

// TestRunClose serves on a real listener, stops on context end, and
// closes idempotently.
func TestRunClose(t *testing.T) {
	d, err := dispatcher.New(dispatcher.Config{Addr: "127.0.0.1:0", RegistryDir: t.TempDir(), Jobs: &dispatchertest.Jobs{}, Workers: dispatchertest.NewWorkers()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.Addr(), "127.0.0.1:") {
		t.Errorf("Addr = %s", d.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	resp, err := http.Get(d.URL() + "/v1/overview")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("overview: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := http.Get(d.URL() + "/v1/overview"); err == nil {
		t.Error("still serving after Close")
	}
}

// TestOpenAPISchemasMatchTypes checks that every schema of the document
// has exactly the JSON fields of the Go type the API sends, so the
// hand-written document cannot drift from internal/api.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	e := newEnv(t, nil)
	if code := e.do(t, "GET", "/v1/openapi.json", "", nil, &doc); code != 200 {
		t.Fatal(code)
	}
	types := map[string]any{
		"Error": api.Error{}, "Problem": api.Problem{}, "SubmitRequest": api.SubmitRequest{}, "ModuleRef": api.ModuleRef{},
		"JobStatus": api.JobStatus{}, "SubtaskStatus": api.SubtaskStatus{}, "SubtaskMetrics": api.SubtaskMetrics{},
		"ChannelMetrics": api.ChannelMetrics{}, "WorkerStatus": api.WorkerStatus{}, "ModuleInfo": api.ModuleInfo{},
		"Overview": api.Overview{}, "Operator": wasmabi.OperatorDesc{},
		"CheckpointStats": api.CheckpointStats{}, "CheckpointInfo": api.CheckpointInfo{},
		"SavepointRequest": api.SavepointRequest{}, "SavepointStatus": api.SavepointStatus{},
		"LogLine": api.LogLine{}, "JobLogs": api.JobLogs{},
	}
	for name, v := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		var fields, props []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				fields = append(fields, tag)
			}
		}
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(fields)
		sort.Strings(props)
		if !reflect.DeepEqual(fields, props) {
			t.Errorf("schema %s has properties %v; the type %s has %v", name, props, rt, fields)
		}
		for _, r := range s.Required {
			if _, ok := s.Properties[r]; !ok {
				t.Errorf("schema %s requires %q, which it does not define", name, r)
			}
		}
	}
}
