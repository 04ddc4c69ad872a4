package clustertest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/cluster"
	"github.com/weirstream/weir/worker/agent"
)

// In one process: a worker with the cluster's certificates registers; a
// second one with the same id is refused with the reason; a worker with
// another cluster's certificates never gets past the TLS handshake.
func TestRegistrationRefusals(t *testing.T) {
	caDir := t.TempDir()
	cl, err := cluster.New(cluster.Config{CADir: caDir})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	first := newAgent(t, ctx, cl.ControlURL(), caDir, "w1")
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	waitWorkers(t, cl, 1)

	dup := newAgent(t, ctx, cl.ControlURL(), caDir, "w1")
	err = dup.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("a second worker w1: %v, want a refusal saying it is already registered", err)
	}

	foreign := newAgent(t, ctx, cl.ControlURL(), t.TempDir(), "w2")
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
	defer fcancel()
	if err := foreign.Run(fctx); err == nil {
		t.Fatal("a worker with a foreign certificate registered")
	}
	if ws, _ := cl.ListWorkers(ctx); len(ws) != 1 || ws[0].ID != "w1" {
		t.Fatalf("workers %+v, want only w1", ws)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("w1: %v", err)
	}
}

func newAgent(t *testing.T, ctx context.Context, url, caDir, id string) *agent.Agent {
	t.Helper()
	a, err := agent.New(ctx, agent.Config{ID: id, Coordinator: url, Slots: 1, CADir: caDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func waitWorkers(t *testing.T, cl *cluster.Cluster, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		ws, _ := cl.ListWorkers(context.Background())
		if len(ws) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers registered, want %d", len(ws), n)
		}
	}
}
