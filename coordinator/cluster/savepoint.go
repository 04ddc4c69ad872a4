package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/weirstream/weir/internal/api"
)

// errSavepointsNotWired is what the savepoint routes answer (501) until the
// JobManager's checkpoint coordinator takes savepoints.
var errSavepointsNotWired = fmt.Errorf("savepoints: not wired yet (%w)", errors.ErrUnsupported)

// Savepoint starts a savepoint of a job (dispatcher.Jobs). Placeholder: the
// checkpoint work replaces this file.
func (c *Cluster) Savepoint(ctx context.Context, tenant, id string, req api.SavepointRequest) (api.SavepointStatus, error) {
	return api.SavepointStatus{}, errSavepointsNotWired
}

// SavepointStatus returns a savepoint request's status (dispatcher.Jobs).
// Placeholder, as Savepoint.
func (c *Cluster) SavepointStatus(ctx context.Context, tenant, id, requestID string) (api.SavepointStatus, error) {
	return api.SavepointStatus{}, errSavepointsNotWired
}
