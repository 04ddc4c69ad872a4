package dispatcher

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/weirstream/weir/internal/api"
)

// Bounds of savepoint requests. A body holds an id, a path and two flags:
// a few KiB is plenty, and refusing more early keeps a flood cheap.
const (
	maxSavepointBody = 8 << 10
	// maxPathLen is PATH_MAX on Linux.
	maxPathLen = 4096
)

// triggerSavepoint is POST /v1/jobs/{id}/savepoints: it starts a savepoint
// and answers 202 with its status at once; the client polls GET
// .../savepoints/{request_id}. An empty body takes every default.
func (d *Dispatcher) triggerSavepoint(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	var req api.SavepointRequest
	if !d.decodeBodyLimit(w, r, &req, maxSavepointBody, true) {
		return
	}
	if apiErr := checkSavepointRequest(&req); apiErr != nil {
		writeError(w, http.StatusBadRequest, apiErr)
		return
	}
	st, err := d.cfg.Jobs.Savepoint(r.Context(), tenant(r), id, req)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, st)
}

// checkSavepointRequest validates a request and fills what the client
// may leave out: the request id (made up) and the folder (cleaned).
func checkSavepointRequest(req *api.SavepointRequest) *api.Error {
	if req.RequestID == "" {
		req.RequestID = api.NewRequestID()
	} else if apiErr := checkRequestID(req.RequestID); apiErr != nil {
		return apiErr
	}
	if req.Dir != "" {
		dir, apiErr := absPath("dir", req.Dir)
		if apiErr != nil {
			apiErr.Message += "; give the folder to write the savepoint under as an absolute path, or leave dir out for the cluster's default"
			return apiErr
		}
		req.Dir = dir
	}
	if req.Drain && !req.Stop {
		return &api.Error{Field: "drain", Message: "drain only means something when the job stops: send stop too (weir job stop ID --savepoint DIR --drain)"}
	}
	return nil
}

// savepointStatus is GET /v1/jobs/{id}/savepoints/{request_id}.
func (d *Dispatcher) savepointStatus(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	rid := r.PathValue("request_id")
	if apiErr := checkRequestID(rid); apiErr != nil {
		writeError(w, http.StatusBadRequest, apiErr)
		return
	}
	st, err := d.cfg.Jobs.SavepointStatus(r.Context(), tenant(r), id, rid)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// checkRequestID checks a savepoint request id: it travels in URLs, so it
// has the charset and length of names.
func checkRequestID(rid string) *api.Error {
	if err := api.CheckName("request id", rid); err != nil {
		return &api.Error{Field: "request_id", Message: strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": ")}
	}
	return nil
}

// absPath checks a path a request names on the cluster's filesystem:
// absolute, bounded, no NUL; it returns it cleaned.
func absPath(field, p string) (string, *api.Error) {
	switch {
	case len(p) > maxPathLen:
		return "", &api.Error{Field: field, Message: fmt.Sprintf("%s is %d bytes long, more than %d", field, len(p), maxPathLen)}
	case strings.ContainsRune(p, 0):
		return "", &api.Error{Field: field, Message: fmt.Sprintf("%s %q holds a NUL byte", field, p)}
	case !filepath.IsAbs(p):
		return "", &api.Error{Field: field, Message: fmt.Sprintf("%s %q is not an absolute path", field, p)}
	}
	return filepath.Clean(p), nil
}
