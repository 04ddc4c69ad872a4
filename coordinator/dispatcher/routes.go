package dispatcher

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/coordinator/registry"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/wasmabi"
)

//go:embed openapi.json
var openAPI []byte

// route is one method on one path pattern (net/http ServeMux syntax).
type route struct {
	method, pattern string
	handle          func(w http.ResponseWriter, r *http.Request)
}

// Route is a method and path pattern the API serves.
type Route struct{ Method, Pattern string }

// Routes lists every method and path pattern the API serves, in the
// order they are registered: what the OpenAPI document must describe.
func (d *Dispatcher) Routes() []Route {
	out := make([]Route, len(d.routes))
	for i, r := range d.routes {
		out[i] = Route{r.method, r.pattern}
	}
	return out
}

func (d *Dispatcher) routeTable() []route {
	return []route{
		{"GET", "/v1/openapi.json", d.openAPI},
		{"GET", "/v1/overview", d.overview},
		{"GET", "/v1/jobs", d.listJobs},
		{"POST", "/v1/jobs", d.submitJob},
		{"GET", "/v1/jobs/{id}", d.getJob},
		{"PATCH", "/v1/jobs/{id}", d.patchJob},
		{"POST", "/v1/jobs/{id}/stop", d.stopJob},
		{"POST", "/v1/jobs/{id}/savepoints", d.triggerSavepoint},
		{"GET", "/v1/jobs/{id}/savepoints/{request_id}", d.savepointStatus},
		{"GET", "/v1/jobs/{id}/logs", d.jobLogs},
		{"GET", "/v1/workers", d.listWorkers},
		{"POST", "/v1/modules", d.uploadModule},
		{"GET", "/v1/modules", d.listModules},
		{"GET", "/v1/modules/{name}/{version}", d.getModule},
		{"GET", "/v1/modules/by-digest/{digest}", d.moduleBytes},
	}
}

// mux registers each path once and picks the method itself, so a wrong
// method gets a JSON 405 naming the allowed ones, and an unknown path a
// JSON 404, instead of net/http's plain-text answers.
func (d *Dispatcher) mux() http.Handler {
	mux := http.NewServeMux()
	byPath := map[string]map[string]func(http.ResponseWriter, *http.Request){}
	var paths []string
	for _, rt := range d.routes {
		if byPath[rt.pattern] == nil {
			byPath[rt.pattern] = map[string]func(http.ResponseWriter, *http.Request){}
			paths = append(paths, rt.pattern)
		}
		byPath[rt.pattern][rt.method] = rt.handle
	}
	for _, p := range paths {
		methods := byPath[p]
		var allow []string
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			h, ok := methods[r.Method]
			if !ok && r.Method == http.MethodHead {
				h, ok = methods[http.MethodGet]
			}
			if !ok {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(w, http.StatusMethodNotAllowed, &api.Error{Message: fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))})
				return
			}
			h(w, r)
		})
	}
	if d.cfg.Internal != nil {
		mux.Handle("/internal/", d.cfg.Internal)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, &api.Error{Message: fmt.Sprintf("no route %s %s; the routes are listed at GET /v1/openapi.json", r.Method, r.URL.Path)})
	})
	return d.recoverer(mux)
}

// recoverer turns a panic in a handler into a 500 with a short message;
// the stack goes to the log, never to the client.
func (d *Dispatcher) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				d.cfg.Logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, &api.Error{Message: "internal error; the coordinator's log has the details"})
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// tenant is the tenant a request acts for: the default one until tokens
// exist.
func tenant(*http.Request) string { return api.DefaultTenant }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(&api.Error{Message: "encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, e *api.Error) { writeJSON(w, status, e) }

// fail answers err with the status its sentinel chooses.
func (d *Dispatcher) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	e := &api.Error{Message: err.Error()}
	var nf *registry.NotFoundError
	switch {
	case len(jobspec.Errors(err)) > 0:
		status = http.StatusBadRequest
		e = specError(err)
	case errors.Is(err, ErrNotFound), errors.Is(err, registry.ErrNotFound), errors.As(err, &nf):
		status = http.StatusNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, registry.ErrExists):
		status = http.StatusConflict
	case errors.Is(err, ErrInvalid), errors.Is(err, registry.ErrInvalidName), errors.Is(err, registry.ErrInvalidModule):
		status = http.StatusBadRequest
	case errors.Is(err, registry.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnavailable), errors.Is(err, registry.ErrClosed):
		status = http.StatusServiceUnavailable
	case errors.Is(err, errors.ErrUnsupported):
		status = http.StatusNotImplemented
	}
	if status == http.StatusInternalServerError {
		d.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, e)
}

// specError lists a spec's problems with their positions.
func specError(err error) *api.Error {
	errs := jobspec.Errors(err)
	e := &api.Error{}
	for _, p := range errs {
		e.Problems = append(e.Problems, api.Problem{File: p.File, Line: p.Line, Col: p.Col, Field: p.Field, Message: p.Msg})
	}
	if len(errs) == 1 {
		e.Message = "the job spec has a problem: " + errs[0].Error()
	} else {
		e.Message = fmt.Sprintf("the job spec has %d problems; the first: %s", len(errs), errs[0].Error())
	}
	return e
}

// decodeBody reads a JSON body into dst: one object, no unknown fields,
// at most the configured bytes.
func (d *Dispatcher) decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	return d.decodeBodyLimit(w, r, dst, d.cfg.MaxBodyBytes, false)
}

// decodeBodyLimit is decodeBody with a limit of its own; with allowEmpty,
// an empty body leaves dst as it is (every field at its default).
func (d *Dispatcher) decodeBodyLimit(w http.ResponseWriter, r *http.Request, dst any, limit int64, allowEmpty bool) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, &api.Error{Message: fmt.Sprintf("Content-Type %q: send application/json", ct)})
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, &api.Error{Message: fmt.Sprintf("the body is larger than %d bytes", limit)})
		} else {
			writeError(w, http.StatusBadRequest, &api.Error{Message: "reading the body: " + err.Error()})
		}
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return true
		}
		writeError(w, http.StatusBadRequest, &api.Error{Message: "the body is empty; send a JSON object"})
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeError(w, http.StatusBadRequest, jsonError(err, body))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, &api.Error{Message: fmt.Sprintf("the body holds more than one JSON value (after offset %d)", dec.InputOffset())})
		return false
	}
	return true
}

// jsonError explains a decoding error with the field or offset.
func jsonError(err error, body []byte) *api.Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &api.Error{Message: fmt.Sprintf("the body is not valid JSON: %v (at offset %d)", se, se.Offset)}
	case errors.As(err, &te):
		return &api.Error{Field: te.Field, Message: fmt.Sprintf("field %q: want a %s, got a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &api.Error{Message: fmt.Sprintf("the body ends in the middle of a JSON value (%d bytes)", len(body))}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return &api.Error{Field: f, Message: fmt.Sprintf("unknown field %q", f)}
	}
	return &api.Error{Message: "the body is not the expected JSON: " + strings.TrimPrefix(msg, "json: ")}
}

func jsonKind(k string) string {
	switch k {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int64", "int32", "uint", "uint64", "uint32", "float64":
		return "number"
	}
	return k
}

func (d *Dispatcher) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}

func (d *Dispatcher) overview(w http.ResponseWriter, r *http.Request) {
	t := tenant(r)
	workers, err := d.cfg.Workers.List(r.Context())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	jobs, err := d.cfg.Jobs.List(r.Context(), t)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	o := api.Overview{Version: d.cfg.Version, ABI: wasmabi.Version, Jobs: map[api.State]int{}, Modules: d.reg.Len(t), Control: d.cfg.ControlURL}
	for _, wk := range workers {
		if wk.State != api.WorkerAlive {
			continue
		}
		o.Workers++
		o.SlotsTotal += wk.Slots
		o.SlotsFree += wk.SlotsFree
	}
	for _, j := range jobs {
		o.Jobs[j.State]++
	}
	writeJSON(w, http.StatusOK, o)
}

// jobList is the body of GET /v1/jobs.
type jobList struct {
	Jobs []api.JobStatus `json:"jobs"`
}

func (d *Dispatcher) listJobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := d.cfg.Jobs.List(r.Context(), tenant(r))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if jobs == nil {
		jobs = []api.JobStatus{}
	}
	for i := range jobs {
		jobs[i].Plan, jobs[i].Subtasks = nil, nil
	}
	writeJSON(w, http.StatusOK, jobList{jobs})
}

// jobID returns the {id} of the path, checked.
func jobID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := api.CheckName("job id", id); err != nil {
		writeError(w, http.StatusBadRequest, &api.Error{Field: "id", Message: strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": ")})
		return "", false
	}
	return id, true
}

func (d *Dispatcher) getJob(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	st, err := d.cfg.Jobs.Get(r.Context(), tenant(r), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (d *Dispatcher) patchJob(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	switch mode := r.URL.Query().Get("mode"); mode {
	case "cancel":
	case "":
		writeError(w, http.StatusBadRequest, &api.Error{Field: "mode", Message: "PATCH /v1/jobs/{id} needs ?mode=cancel (to stop a job gracefully, POST /v1/jobs/{id}/stop)"})
		return
	default:
		writeError(w, http.StatusBadRequest, &api.Error{Field: "mode", Message: fmt.Sprintf("mode %q: the only mode is cancel", mode)})
		return
	}
	st, err := d.cfg.Jobs.Cancel(r.Context(), tenant(r), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, st)
}

func (d *Dispatcher) stopJob(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	st, err := d.cfg.Jobs.Stop(r.Context(), tenant(r), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, st)
}

func (d *Dispatcher) jobLogs(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var after int64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: fmt.Sprintf("after=%q: want a line number (the next of an earlier answer)", s), Field: "after"})
			return
		}
		after = n
	}
	op := q.Get("operator")
	if len(op) > 256 {
		writeJSON(w, http.StatusBadRequest, api.Error{Message: "operator: longer than 256 bytes", Field: "operator"})
		return
	}
	logs, err := d.cfg.Jobs.Logs(r.Context(), tenant(r), id, op, after)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, logs)
}

func (d *Dispatcher) submitJob(w http.ResponseWriter, r *http.Request) {
	var req api.SubmitRequest
	if !d.decodeBody(w, r, &req) {
		return
	}
	sub, apiErr := d.prepare(tenant(r), &req)
	if apiErr != nil {
		writeError(w, http.StatusBadRequest, apiErr)
		return
	}
	st, err := d.cfg.Jobs.Submit(r.Context(), *sub)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, st)
}

// Submit validates and submits a job in-process, as POST /v1/jobs does:
// for a coordinator that starts with its job (application mode). A
// problem with the request is an *api.Error (with the spec's problems);
// errors of Jobs.Submit are returned as they are.
func (d *Dispatcher) Submit(ctx context.Context, tenant string, req api.SubmitRequest) (api.JobStatus, error) {
	sub, apiErr := d.prepare(tenant, &req)
	if apiErr != nil {
		return api.JobStatus{}, apiErr
	}
	return d.cfg.Jobs.Submit(ctx, *sub)
}

// prepare validates a submission: the spec, its modules against the
// registry, its plan.
func (d *Dispatcher) prepare(t string, req *api.SubmitRequest) (*Submission, *api.Error) {
	if strings.TrimSpace(req.Spec) == "" {
		return nil, &api.Error{Field: "spec", Message: "spec is empty; send the job spec's YAML or JSON text"}
	}
	file := "job.yaml"
	if req.File != "" {
		file = filepath.Base(req.File)
	}
	if req.Dir != "" && !filepath.IsAbs(req.Dir) {
		return nil, &api.Error{Field: "dir", Message: fmt.Sprintf("dir %q is not an absolute path", req.Dir)}
	}
	from := ""
	if req.FromSavepoint != "" {
		var apiErr *api.Error
		if from, apiErr = absPath("from_savepoint", req.FromSavepoint); apiErr != nil {
			apiErr.Message += "; give the savepoint's folder as `weir job savepoint` printed it, <root>/<job>/chk-<n>"
			return nil, apiErr
		}
	} else if req.AllowNonRestoredState {
		return nil, &api.Error{Field: "allow_non_restored_state", Message: "allow_non_restored_state is only for a restore: give from_savepoint too, or leave it out"}
	}
	j, err := jobspec.ParseRemote([]byte(req.Spec), file, req.Dir)
	if err != nil {
		if len(jobspec.Errors(err)) > 0 {
			return nil, specError(err)
		}
		return nil, &api.Error{Field: "spec", Message: err.Error()}
	}
	if apiErr := overrideCheckpoints(j, req); apiErr != nil {
		return nil, apiErr
	}
	var errs []error
	mods := map[string]api.ModuleInfo{}
	descs := plan.Descriptors{}
	for _, m := range j.Modules {
		if m.Registry == nil { // ParseRemote refuses local paths
			errs = append(errs, j.Errorf(m.Field, "no registry module"))
			continue
		}
		info, err := d.reg.Get(t, m.Registry.Name, m.Registry.Version)
		if err != nil {
			errs = append(errs, j.Errorf(m.Field, "%v", err))
			continue
		}
		m.Registry.Digest = info.Digest
		mods[m.Name] = info
		descs[m.Name] = &wasmabi.Descriptor{SDK: info.SDK, Operators: info.Operators}
	}
	if len(errs) > 0 {
		return nil, specError(errors.Join(errs...))
	}
	p, err := plan.Build(j, descs)
	if err != nil {
		if len(jobspec.Errors(err)) > 0 {
			return nil, specError(err)
		}
		return nil, &api.Error{Field: "spec", Message: err.Error()}
	}
	return &Submission{Tenant: t, Spec: []byte(req.Spec), Job: j, Plan: p, Modules: mods,
		FromSavepoint: from, AllowNonRestoredState: req.AllowNonRestoredState}, nil
}

// overrideCheckpoints applies the request's checkpoint_interval and
// checkpoint_mode to the parsed spec.
func overrideCheckpoints(j *jobspec.Job, req *api.SubmitRequest) *api.Error {
	if req.CheckpointInterval != "" {
		d, err := time.ParseDuration(req.CheckpointInterval)
		if err != nil || d < jobspec.MinCheckpointInterval {
			return &api.Error{Field: "checkpoint_interval", Message: fmt.Sprintf("checkpoint_interval %q: want a positive duration of at least %s, such as \"1s\"", req.CheckpointInterval, jobspec.MinCheckpointInterval)}
		}
		j.Checkpoints.Interval = d
	}
	if req.CheckpointMode != "" {
		m := barrier.Mode(req.CheckpointMode)
		if !m.Valid() {
			return &api.Error{Field: "checkpoint_mode", Message: fmt.Sprintf("checkpoint_mode %q: want aligned, unaligned or at-least-once", req.CheckpointMode)}
		}
		j.Checkpoints.Mode = m
	}
	return nil
}

type workerList struct {
	Workers []api.WorkerStatus `json:"workers"`
}

func (d *Dispatcher) listWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := d.cfg.Workers.List(r.Context())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if ws == nil {
		ws = []api.WorkerStatus{}
	}
	writeJSON(w, http.StatusOK, workerList{ws})
}

type moduleList struct {
	Modules []api.ModuleInfo `json:"modules"`
}

// uploadModule stores the body, a .wasm file, as ?name=N&version=V.
func (d *Dispatcher) uploadModule(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "name" && k != "version" {
			writeError(w, http.StatusBadRequest, &api.Error{Field: k, Message: fmt.Sprintf("unknown query parameter %q (want name and version)", k)})
			return
		}
	}
	name, version := q.Get("name"), q.Get("version")
	for _, c := range [][2]string{{"name", name}, {"version", version}} {
		if err := api.CheckName(c[0], c[1]); err != nil {
			writeError(w, http.StatusBadRequest, &api.Error{Field: c[0], Message: strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": ") + "; upload with ?name=NAME&version=VERSION"})
			return
		}
	}
	switch ct := r.Header.Get("Content-Type"); ct {
	case "", "application/wasm", "application/octet-stream":
	default:
		writeError(w, http.StatusUnsupportedMediaType, &api.Error{Message: fmt.Sprintf("Content-Type %q: send the module's bytes as application/wasm", ct)})
		return
	}
	limit := d.reg.MaxModuleBytes()
	if r.ContentLength > int64(limit) {
		writeError(w, http.StatusRequestEntityTooLarge, &api.Error{Message: fmt.Sprintf("the module is %d bytes, more than the limit of %d", r.ContentLength, limit)})
		return
	}
	select {
	case d.uploads <- struct{}{}:
		defer func() { <-d.uploads }()
	case <-r.Context().Done():
		writeError(w, http.StatusServiceUnavailable, &api.Error{Message: "gave up waiting for a turn to upload"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, &api.Error{Message: fmt.Sprintf("the module is more than the limit of %d bytes", limit)})
		} else {
			writeError(w, http.StatusBadRequest, &api.Error{Message: "reading the module: " + err.Error()})
		}
		return
	}
	info, created, err := d.reg.Put(r.Context(), tenant(r), name, version, body)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, info)
}

func (d *Dispatcher) listModules(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name != "" {
		if err := api.CheckName("name", name); err != nil {
			writeError(w, http.StatusBadRequest, &api.Error{Field: "name", Message: strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": ")})
			return
		}
	}
	writeJSON(w, http.StatusOK, moduleList{d.reg.List(tenant(r), name)})
}

func (d *Dispatcher) getModule(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	for _, c := range [][2]string{{"name", name}, {"version", version}} {
		if err := api.CheckName(c[0], c[1]); err != nil {
			writeError(w, http.StatusBadRequest, &api.Error{Field: c[0], Message: strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": ")})
			return
		}
	}
	info, err := d.reg.Get(tenant(r), name, version)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// moduleBytes serves a module's bytes by digest, for workers. The content
// never changes, so it may be cached forever.
func (d *Dispatcher) moduleBytes(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if err := registry.CheckDigest(digest); err != nil {
		writeError(w, http.StatusBadRequest, &api.Error{Field: "digest", Message: fmt.Sprintf("digest %q: want 64 lowercase hex digits (a sha256)", digest)})
		return
	}
	f, err := d.reg.OpenBlob(digest)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/wasm")
	w.Header().Set("ETag", `"`+digest+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", st.ModTime(), f)
}
