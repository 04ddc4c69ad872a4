package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/weirstream/weir/internal/control"
)

// refusedError is a 4xx answer: the coordinator will not take the request
// as it is, and retrying will not change that.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func (a *Agent) post(ctx context.Context, path string, body, reply any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.cfg.Coordinator, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return a.do(req, reply)
}

func (a *Agent) get(ctx context.Context, path string, reply any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(a.cfg.Coordinator, "/")+path, nil)
	if err != nil {
		return err
	}
	return a.do(req, reply)
}

func (a *Agent) do(req *http.Request, reply any) error {
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, control.MaxBody+1))
	if err != nil {
		return err
	}
	if len(body) > control.MaxBody {
		return fmt.Errorf("agent: %s answered more than %d bytes", req.URL.Path, control.MaxBody)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(body))
		}
		return &refusedError{msg: e.Message}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent: %s: %s", req.URL.Path, resp.Status)
	}
	if reply == nil {
		return nil
	}
	if err := json.Unmarshal(body, reply); err != nil {
		return fmt.Errorf("agent: decoding the answer to %s: %w", req.URL.Path, err)
	}
	return nil
}
