package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/weirstream/weir/coordinator/execgraph"
	"github.com/weirstream/weir/coordinator/slots"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/control"
)

// The control endpoints. Every peer presented a certificate of the
// cluster's CA (the TLS listener checks it), but what it sends is still
// checked: sizes, ids, states.

// commandWait bounds a long-poll for commands.
const commandWait = 10 * time.Second

func (c *Cluster) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req control.Register
	if !decode(w, r, &req) {
		return
	}
	if err := control.CheckID("worker", req.Worker); err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	acts, err := c.mu.pool.Step(slots.Register{Now: c.now(), Worker: req.Worker, Address: req.DataAddr, Slots: req.Slots})
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, slots.ErrDuplicateWorker) {
			code = http.StatusConflict
		}
		c.log.Warn("registration refused", "worker", req.Worker, "err", err)
		refuse(w, code, err.Error())
		return
	}
	now := time.Now()
	c.mu.workers[req.Worker] = &workerConn{id: req.Worker, dataAddr: req.DataAddr, slots: req.Slots, registered: now, lastBeat: now, notify: make(chan struct{}, 1)}
	c.log.Info("worker registered", "worker", req.Worker, "slots", req.Slots, "data", req.DataAddr)
	c.carryPool(acts)
	reply(w, control.Registered{HeartbeatInterval: control.Duration(c.cfg.HeartbeatInterval), ModulesURL: c.cfg.ModulesURL})
}

func (c *Cluster) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var hb control.Heartbeat
	if !decode(w, r, &hb) {
		return
	}
	if len(hb.Tasks) > control.MaxTasks {
		refuse(w, http.StatusBadRequest, fmt.Sprintf("%d task reports, over the limit of %d", len(hb.Tasks), control.MaxTasks))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	wc := c.mu.workers[hb.Worker]
	acts, err := c.mu.pool.Step(slots.Heartbeat{Now: c.now(), Worker: hb.Worker})
	if err != nil || wc == nil {
		reply(w, control.HeartbeatReply{Known: false})
		return
	}
	wc.lastBeat = time.Now()
	c.carryPool(acts)
	for _, t := range hb.Tasks {
		c.taskReport(hb.Worker, t)
	}
	if len(hb.Logs) > control.MaxLogs {
		hb.Logs = hb.Logs[:control.MaxLogs]
	}
	for _, l := range hb.Logs {
		c.taskLog(hb.Worker, l)
	}
	reply(w, control.HeartbeatReply{Known: true})
}

// taskReport steps a job's graph with a subtask's reported state, when it
// changed; c.mu is held.
func (c *Cluster) taskReport(worker string, t control.TaskReport) {
	j := c.mu.jobs[t.Job]
	if j == nil {
		return
	}
	id := execgraph.SubtaskID{Vertex: t.Vertex, Index: t.Index}
	if s, ok := j.assign[id]; !ok || s.Worker != worker {
		return // not this worker's to report
	}
	prev, seen := j.reported[id]
	j.reported[id] = t
	if seen && prev.Attempt == t.Attempt && prev.State == t.State {
		return
	}
	st, err := execgraph.ParseState(t.State)
	if err != nil {
		c.log.Warn("bad task state", "worker", worker, "job", t.Job, "state", t.State)
		return
	}
	c.jobStep(j, execgraph.TaskState{Now: c.now(), Subtask: id, Attempt: t.Attempt, State: st, Cause: t.Cause})
	c.checkpointReport(j, id, t)
}

// taskLog keeps a module log line of a job the worker runs; c.mu is held.
func (c *Cluster) taskLog(worker string, l control.LogLine) {
	j := c.mu.jobs[l.Job]
	if j == nil || !j.runsOn(worker) {
		return
	}
	if len(l.Message) > control.MaxLogLine {
		l.Message = l.Message[:control.MaxLogLine]
	}
	j.logSeq++
	j.logs = append(j.logs, api.LogLine{Seq: j.logSeq, Time: l.Time, Attempt: l.Attempt, Operator: l.Operator, Subtask: l.Subtask, Level: l.Level, Message: l.Message})
	if len(j.logs) > jobLogLines {
		j.logs = append(j.logs[:0], j.logs[len(j.logs)-jobLogLines/2:]...)
	}
}

func (c *Cluster) handleCommands(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("worker")
	c.mu.Lock()
	wc := c.mu.workers[id]
	c.mu.Unlock()
	if wc == nil {
		reply(w, control.Commands{Unknown: true})
		return
	}
	timer := time.NewTimer(commandWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		cmds := wc.queue
		wc.queue = nil
		c.mu.Unlock()
		if len(cmds) > 0 {
			reply(w, control.Commands{Commands: cmds})
			return
		}
		select {
		case _, ok := <-wc.notify:
			if !ok {
				reply(w, control.Commands{Unknown: true})
				return
			}
		case <-timer.C:
			reply(w, control.Commands{})
			return
		case <-r.Context().Done():
			return
		}
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, control.MaxBody+1))
	if err != nil {
		refuse(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return false
	}
	if len(body) > control.MaxBody {
		refuse(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", control.MaxBody))
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		refuse(w, http.StatusBadRequest, "decoding the body: "+err.Error())
		return false
	}
	return true
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
