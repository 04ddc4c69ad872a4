// Package client talks to a weir coordinator's REST API (/v1): the CLI's
// `weir job ...`, `weir module upload|list` and `weir cluster status` use
// it, and a worker can use it to fetch modules by digest. Answers are
// decoded into the shared types of internal/api; an error answer becomes
// an *Error carrying the server's message, field and spec problems.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/internal/api"
)

// DefaultURL is the coordinator a client talks to unless told otherwise.
const DefaultURL = "http://127.0.0.1:8081"

// DefaultMaxModuleBytes bounds ModuleBytes answers by default, as the
// coordinator bounds uploads.
const DefaultMaxModuleBytes = 64 << 20

const (
	// maxJSONBytes bounds JSON answers, so a misbehaving server cannot
	// make the client allocate without bound.
	maxJSONBytes     = 64 << 20
	defaultTimeout   = 5 * time.Minute // an upload of 64 MiB over a slow link
	errorBodyPreview = 512
	jobsPath         = "/v1/jobs"
	modulesPath      = "/v1/modules"
	contentTypeJSON  = "application/json"
	unreachableHint  = "is `weir coordinator` running there? (set --coordinator or WEIR_COORDINATOR)"
)

// Options configure a Client.
type Options struct {
	// HTTP is the HTTP client (default: one with a 5-minute timeout).
	HTTP *http.Client
	// MaxModuleBytes bounds ModuleBytes answers (default 64 MiB).
	MaxModuleBytes int64
}

// Client is a coordinator's API. It is safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
	max  int64
}

// ErrUnreachable wraps failures to reach the coordinator at all.
var ErrUnreachable = errors.New("client: cannot reach the coordinator")

// Error is an error answer from the coordinator.
type Error struct {
	Status   int
	Message  string
	Field    string
	Problems []api.Problem
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// New returns a client of the coordinator at base: http://host:port, or
// host:port (http is assumed).
func New(base string, opts Options) (*Client, error) {
	if base == "" {
		base = DefaultURL
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("client: coordinator address %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("client: coordinator address %q: want http://HOST:PORT", base)
	}
	u.Path = ""
	c := &Client{base: u, http: opts.HTTP, max: opts.MaxModuleBytes}
	if c.http == nil {
		c.http = &http.Client{Timeout: defaultTimeout}
	}
	if c.max == 0 {
		c.max = DefaultMaxModuleBytes
	}
	return c, nil
}

// URL is the coordinator's base URL.
func (c *Client) URL() string { return c.base.String() }

// do sends a request and decodes a JSON answer into out. It returns the
// status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, ctype string, body []byte, out any) (int, error) {
	resp, err := c.send(ctx, method, path, query, ctype, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBytes+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("client: reading the answer to %s %s: %w", method, path, err)
	}
	if len(b) > maxJSONBytes {
		return resp.StatusCode, fmt.Errorf("client: the answer to %s %s is larger than %d bytes", method, path, maxJSONBytes)
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, answerError(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("client: decoding the answer to %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, ctype string, body []byte) (*http.Response, error) {
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", contentTypeJSON)
	req.Header.Set("User-Agent", "weir-client/1")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v; %s", ErrUnreachable, c.base, errors.Unwrap(err), unreachableHint)
	}
	return resp, nil
}

// answerError decodes an error answer; a body that is not an api.Error
// (a proxy's page, say) is quoted briefly.
func answerError(status int, b []byte) error {
	var ae api.Error
	e := &Error{Status: status}
	if err := json.Unmarshal(b, &ae); err == nil && ae.Message != "" {
		e.Message, e.Field, e.Problems = ae.Message, ae.Field, ae.Problems
	} else {
		s := strings.TrimSpace(string(b))
		if len(s) > errorBodyPreview {
			s = s[:errorBodyPreview] + "..."
		}
		e.Message = fmt.Sprintf("%s: %q", http.StatusText(status), s)
	}
	return e
}

// Overview is GET /v1/overview.
func (c *Client) Overview(ctx context.Context) (api.Overview, error) {
	var o api.Overview
	_, err := c.do(ctx, "GET", "/v1/overview", nil, "", nil, &o)
	return o, err
}

// Submit is POST /v1/jobs.
func (c *Client) Submit(ctx context.Context, req api.SubmitRequest) (api.JobStatus, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return api.JobStatus{}, err
	}
	var st api.JobStatus
	_, err = c.do(ctx, "POST", jobsPath, nil, contentTypeJSON, b, &st)
	return st, err
}

// Jobs is GET /v1/jobs.
func (c *Client) Jobs(ctx context.Context) ([]api.JobStatus, error) {
	var l struct {
		Jobs []api.JobStatus `json:"jobs"`
	}
	_, err := c.do(ctx, "GET", jobsPath, nil, "", nil, &l)
	return l.Jobs, err
}

// Job is GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id string) (api.JobStatus, error) {
	var st api.JobStatus
	_, err := c.do(ctx, "GET", jobsPath+"/"+url.PathEscape(id), nil, "", nil, &st)
	return st, err
}

// Cancel is PATCH /v1/jobs/{id}?mode=cancel.
func (c *Client) Cancel(ctx context.Context, id string) (api.JobStatus, error) {
	var st api.JobStatus
	_, err := c.do(ctx, "PATCH", jobsPath+"/"+url.PathEscape(id), url.Values{"mode": {"cancel"}}, "", nil, &st)
	return st, err
}

// Logs is GET /v1/jobs/{id}/logs: the job's module log lines after seq
// after, of one operator or (operator "") all.
func (c *Client) Logs(ctx context.Context, id, operator string, after int64) (api.JobLogs, error) {
	var l api.JobLogs
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if operator != "" {
		q.Set("operator", operator)
	}
	_, err := c.do(ctx, "GET", jobsPath+"/"+url.PathEscape(id)+"/logs", q, "", nil, &l)
	return l, err
}

// Stop is POST /v1/jobs/{id}/stop.
func (c *Client) Stop(ctx context.Context, id string) (api.JobStatus, error) {
	var st api.JobStatus
	_, err := c.do(ctx, "POST", jobsPath+"/"+url.PathEscape(id)+"/stop", nil, "", nil, &st)
	return st, err
}

// Savepoint is POST /v1/jobs/{id}/savepoints: it starts a savepoint (or,
// with a request id sent before, answers that request's status) and
// returns at once. Send a RequestID (api.NewRequestID) to retry safely.
func (c *Client) Savepoint(ctx context.Context, id string, req api.SavepointRequest) (api.SavepointStatus, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return api.SavepointStatus{}, err
	}
	var st api.SavepointStatus
	_, err = c.do(ctx, "POST", jobsPath+"/"+url.PathEscape(id)+"/savepoints", nil, contentTypeJSON, b, &st)
	return st, err
}

// SavepointStatus is GET /v1/jobs/{id}/savepoints/{request_id}.
func (c *Client) SavepointStatus(ctx context.Context, id, requestID string) (api.SavepointStatus, error) {
	var st api.SavepointStatus
	_, err := c.do(ctx, "GET", jobsPath+"/"+url.PathEscape(id)+"/savepoints/"+url.PathEscape(requestID), nil, "", nil, &st)
	return st, err
}

// WaitSavepoint polls a savepoint request every poll until it is no longer
// pending and returns its last status; progress, if not nil, sees every
// status polled. A failed savepoint is a status, not an error: errors are
// the coordinator's answers and ctx ending.
func (c *Client) WaitSavepoint(ctx context.Context, st api.SavepointStatus, poll time.Duration, progress func(api.SavepointStatus)) (api.SavepointStatus, error) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for st.State == api.SavepointPending {
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		}
		next, err := c.SavepointStatus(ctx, st.Job, st.RequestID)
		if err != nil {
			return st, err
		}
		st = next
		if progress != nil {
			progress(st)
		}
	}
	return st, nil
}

// Workers is GET /v1/workers.
func (c *Client) Workers(ctx context.Context) ([]api.WorkerStatus, error) {
	var l struct {
		Workers []api.WorkerStatus `json:"workers"`
	}
	_, err := c.do(ctx, "GET", "/v1/workers", nil, "", nil, &l)
	return l.Workers, err
}

// Upload is POST /v1/modules: it stores wasm as name@version and reports
// whether it is new (false: the same bytes were there already).
func (c *Client) Upload(ctx context.Context, name, version string, wasm []byte) (api.ModuleInfo, bool, error) {
	var m api.ModuleInfo
	status, err := c.do(ctx, "POST", modulesPath, url.Values{"name": {name}, "version": {version}}, "application/wasm", wasm, &m)
	return m, status == http.StatusCreated, err
}

// Modules is GET /v1/modules: every module, or the versions of name.
func (c *Client) Modules(ctx context.Context, name string) ([]api.ModuleInfo, error) {
	var q url.Values
	if name != "" {
		q = url.Values{"name": {name}}
	}
	var l struct {
		Modules []api.ModuleInfo `json:"modules"`
	}
	_, err := c.do(ctx, "GET", modulesPath, q, "", nil, &l)
	return l.Modules, err
}

// Module is GET /v1/modules/{name}/{version}.
func (c *Client) Module(ctx context.Context, name, version string) (api.ModuleInfo, error) {
	var m api.ModuleInfo
	_, err := c.do(ctx, "GET", modulesPath+"/"+url.PathEscape(name)+"/"+url.PathEscape(version), nil, "", nil, &m)
	return m, err
}

// ModuleBytes fetches a module's bytes by digest and checks them against
// it (GET /v1/modules/by-digest/{digest}).
func (c *Client) ModuleBytes(ctx context.Context, digest string) ([]byte, error) {
	resp, err := c.send(ctx, "GET", modulesPath+"/by-digest/"+url.PathEscape(digest), nil, "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.max+1))
	if err != nil {
		return nil, fmt.Errorf("client: fetching module %s: %w", digest, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, answerError(resp.StatusCode, b)
	}
	if int64(len(b)) > c.max {
		return nil, fmt.Errorf("client: module %s is larger than %d bytes", digest, c.max)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != digest {
		return nil, fmt.Errorf("client: module %s: the bytes fetched have digest %s; refusing them", digest, got)
	}
	return b, nil
}
