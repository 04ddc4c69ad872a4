// Package api holds the JSON types of weir's REST API (/v1), shared by the
// coordinator's Dispatcher, which serves them, and the client
// (internal/client, the CLI), which reads them. It is a leaf: plain data,
// no behaviour beyond small helpers, so both sides agree on the wire format
// by construction. docs/rest.md and /v1/openapi.json describe the routes.
package api

import (
	"encoding/json"
	"time"

	"github.com/weirstream/weir/wasmabi"
)

// DefaultTenant owns every job and module until tenants and tokens exist.
const DefaultTenant = "default"

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	// Message says what is wrong and what to do about it.
	Message string `json:"message"`
	// Field is the request field (or query parameter) at fault, if one is.
	Field string `json:"field,omitempty"`
	// Problems lists every problem of a job spec, each with its position.
	Problems []Problem `json:"problems,omitempty"`
}

// Error makes *Error an error, so a client can return what the server said.
func (e *Error) Error() string { return e.Message }

// Problem is one problem in a job spec, at a position in it.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// State is the state of a job or of one of its subtasks.
type State string

// States. A subtask goes created -> scheduled -> deploying -> running ->
// finished, or to canceling -> canceled, or to failed. A job is created
// until its subtasks are scheduled, running while any runs, restarting
// between attempts, and ends finished, canceled or failed.
const (
	StateCreated    State = "created"
	StateScheduled  State = "scheduled"
	StateDeploying  State = "deploying"
	StateRunning    State = "running"
	StateRestarting State = "restarting"
	StateFinished   State = "finished"
	StateCanceling  State = "canceling"
	StateCanceled   State = "canceled"
	StateFailed     State = "failed"
)

// Terminal reports whether s is an end state: finished, canceled or failed.
func (s State) Terminal() bool {
	return s == StateFinished || s == StateCanceled || s == StateFailed
}

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	// Spec is the job spec, YAML or JSON, as text. Its modules must name
	// registry modules (name@version); `weir job submit` uploads local
	// ones and rewrites the spec.
	Spec string `json:"spec"`
	// File is the spec's file name, used in the positions of problems.
	File string `json:"file,omitempty"`
	// Dir is the absolute folder on the submitting machine that relative
	// paths in the spec (connector files, state.dir) are resolved against,
	// for clusters whose workers share that filesystem; "" resolves them
	// against the coordinator's working folder.
	Dir string `json:"dir,omitempty"`
	// FromSavepoint is the absolute path of a savepoint (or a retained
	// checkpoint) folder, <root>/<job>/chk-<n>, to restore the job's state
	// from; its operators are matched to the spec's by uid.
	FromSavepoint string `json:"from_savepoint,omitempty"`
	// AllowNonRestoredState lets a restore drop the state of operators
	// the savepoint has and the job no longer does; without it such a
	// restore is refused, listing their uids.
	AllowNonRestoredState bool `json:"allow_non_restored_state,omitempty"`
	// CheckpointInterval, a Go duration such as "1s", overrides the
	// spec's checkpoints.interval (and turns checkpoints on).
	CheckpointInterval string `json:"checkpoint_interval,omitempty"`
	// CheckpointMode overrides the spec's checkpoints.mode: aligned,
	// unaligned or at-least-once.
	CheckpointMode string `json:"checkpoint_mode,omitempty"`
}

// JobStatus is a job: what GET /v1/jobs/{id} answers, and each element of
// GET /v1/jobs (which leaves out Plan and Subtasks).
type JobStatus struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	State  State  `json:"state"`
	// Message explains the state: what it waits for ("waiting for 4
	// slots, 2 free"), why it failed, what is restarting it.
	Message string `json:"message,omitempty"`
	// Attempt counts the job's starts: 1 at first, +1 per restart.
	Attempt   int        `json:"attempt"`
	Submitted time.Time  `json:"submitted"`
	Started   *time.Time `json:"started,omitempty"`
	Ended     *time.Time `json:"ended,omitempty"`
	// Slots is the number of slots the job needs.
	Slots int `json:"slots"`
	// Modules are the registry modules the job runs, by spec module name.
	Modules map[string]ModuleRef `json:"modules,omitempty"`
	// Plan is the execution plan (coordinator/plan's JSON form).
	Plan json.RawMessage `json:"plan,omitempty"`
	// Subtasks is the status of every subtask of every task.
	Subtasks []SubtaskStatus `json:"subtasks,omitempty"`
	// Checkpoints sums up the job's checkpoints, for a job that takes
	// them (or has taken a savepoint, or was restored from one).
	Checkpoints *CheckpointStats `json:"checkpoints,omitempty"`
}

// CheckpointStats are a job's checkpoint counts and its latest one.
type CheckpointStats struct {
	Completed  int `json:"completed"`
	Failed     int `json:"failed"`
	InProgress int `json:"in_progress"`
	// Latest is the newest completed checkpoint or savepoint.
	Latest *CheckpointInfo `json:"latest,omitempty"`
	// LastFailure says why the last checkpoint that failed did.
	LastFailure string `json:"last_failure,omitempty"`
	// Restored is the checkpoint or savepoint folder the current attempt
	// restored its state from, if it did.
	Restored string `json:"restored,omitempty"`
	// EndedSubtasks counts the subtasks of the current attempt that ended
	// their input: they wait for the job's final checkpoint, which
	// commits their last output and ends the job.
	EndedSubtasks int `json:"ended_subtasks,omitempty"`
}

// CheckpointInfo is one completed checkpoint or savepoint.
type CheckpointInfo struct {
	ID uint64 `json:"id"`
	// Path is its folder, <root>/<job>/chk-<id>.
	Path       string `json:"path"`
	DurationMs int64  `json:"duration_ms"`
	// Size is the bytes of its files.
	Size      int64 `json:"size"`
	Savepoint bool  `json:"savepoint,omitempty"`
}

// Savepoint states.
const (
	SavepointPending   = "pending"
	SavepointCompleted = "completed"
	SavepointFailed    = "failed"
)

// SavepointRequest is the body of POST /v1/jobs/{id}/savepoints.
type SavepointRequest struct {
	// RequestID names the request, so a retry is safe: the same id again
	// answers the first request's status and never takes a second
	// savepoint. Letters, digits, '_', '-' and '.', at most 128 bytes;
	// empty: the coordinator makes one up and answers it.
	RequestID string `json:"request_id,omitempty"`
	// Dir is the absolute folder to write the savepoint under (it becomes
	// Dir/<job>/chk-<n>); empty: the cluster's default savepoint folder.
	Dir string `json:"dir,omitempty"`
	// Stop ends the job once the savepoint is complete: its sinks commit
	// what they wrote up to the savepoint and the job is canceled, so
	// that a job resumed from the savepoint emits nothing twice.
	Stop bool `json:"stop,omitempty"`
	// Drain, with Stop, ends the job by draining instead: its sources
	// stop after the savepoint and event time runs to the end, firing
	// every timer and window (output a job resumed from the savepoint
	// would emit again).
	Drain bool `json:"drain,omitempty"`
}

// SavepointStatus is a savepoint request's state, what POST
// /v1/jobs/{id}/savepoints and GET /v1/jobs/{id}/savepoints/{request_id}
// answer.
type SavepointStatus struct {
	RequestID string `json:"request_id"`
	Job       string `json:"job"`
	// State is SavepointPending, SavepointCompleted or SavepointFailed.
	State string `json:"state"`
	// Checkpoint is the savepoint's checkpoint id, once it has one.
	Checkpoint uint64 `json:"checkpoint,omitempty"`
	// Path is the savepoint's folder, once it is completed: what `weir
	// job submit --from-savepoint` takes.
	Path string `json:"path,omitempty"`
	// Error says why it failed.
	Error string `json:"error,omitempty"`
}

// ModuleRef names one version of a registry module and pins its content.
type ModuleRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
}

// SubtaskStatus is one parallel instance of a task (a chain of operators).
type SubtaskStatus struct {
	// Task is the task's name: the plan vertex's name, its chained
	// nodes' uids joined by " -> ".
	Task string `json:"task"`
	// Index is the subtask's index, 0 to Parallelism-1.
	Index       int    `json:"index"`
	Parallelism int    `json:"parallelism"`
	State       State  `json:"state"`
	Attempt     int    `json:"attempt"`
	Worker      string `json:"worker,omitempty"`
	Slot        int    `json:"slot"`
	// Failure is the error that failed the subtask.
	Failure string         `json:"failure,omitempty"`
	Metrics SubtaskMetrics `json:"metrics"`
}

// SubtaskMetrics are a subtask's counters and where its time goes.
type SubtaskMetrics struct {
	RecordsIn  int64 `json:"records_in"`
	RecordsOut int64 `json:"records_out"`
	BytesIn    int64 `json:"bytes_in"`
	BytesOut   int64 `json:"bytes_out"`
	// Milliseconds per second spent processing, waiting for input, and
	// waiting for credits downstream (backpressure), over the last second.
	BusyMsPerSec          float64 `json:"busy_ms_per_sec"`
	IdleMsPerSec          float64 `json:"idle_ms_per_sec"`
	BackpressuredMsPerSec float64 `json:"backpressured_ms_per_sec"`
	// Watermark is the subtask's current event-time clock (ms), if any.
	Watermark *int64 `json:"watermark,omitempty"`
	// Channels are the subtask's input and output channels.
	Channels []ChannelMetrics `json:"channels,omitempty"`
}

// ChannelMetrics are the credits and backlog of one channel of a subtask.
type ChannelMetrics struct {
	// Direction is "in" or "out".
	Direction string `json:"direction"`
	// Peer names the other end: "task[index]".
	Peer string `json:"peer"`
	// Credits are the buffers the receiver has granted and the sender not
	// yet used; Backlog the buffers queued at the sender.
	Credits int `json:"credits"`
	Backlog int `json:"backlog"`
}

// Worker states.
const (
	WorkerAlive = "alive"
	WorkerDead  = "dead" // missed its heartbeats; its slots are gone
)

// WorkerStatus is one worker: an element of GET /v1/workers.
type WorkerStatus struct {
	ID string `json:"id"`
	// Address is where other workers reach its data plane.
	Address string `json:"address"`
	// State is WorkerAlive, or WorkerDead after missed heartbeats.
	State         string    `json:"state"`
	Slots         int       `json:"slots"`
	SlotsUsed     int       `json:"slots_used"`
	SlotsFree     int       `json:"slots_free"`
	Registered    time.Time `json:"registered"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// Tasks is the number of subtasks it runs.
	Tasks int `json:"tasks"`
}

// ModuleInfo is one version of a module in the registry.
type ModuleInfo struct {
	Tenant  string `json:"tenant"`
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digest is the lowercase hex sha256 of the module's bytes, which
	// GET /v1/modules/by-digest/{digest} returns.
	Digest    string                 `json:"digest"`
	Size      int64                  `json:"size"`
	ABI       int                    `json:"abi"`
	SDK       string                 `json:"sdk,omitempty"`
	Operators []wasmabi.OperatorDesc `json:"operators"`
	Uploaded  time.Time              `json:"uploaded"`
}

// Ref is the module's name@version and digest.
func (m *ModuleInfo) Ref() ModuleRef {
	return ModuleRef{Name: m.Name, Version: m.Version, Digest: m.Digest}
}

// Overview is GET /v1/overview: the cluster at a glance.
type Overview struct {
	Version    string `json:"version"`
	ABI        int    `json:"abi"`
	Workers    int    `json:"workers"`
	SlotsTotal int    `json:"slots_total"`
	SlotsFree  int    `json:"slots_free"`
	// Jobs counts the tenant's jobs by state.
	Jobs    map[State]int `json:"jobs"`
	Modules int           `json:"modules"`
	// Control is the URL workers register at (HTTPS with the cluster's
	// certificates); `weir worker --coordinator` finds it here.
	Control string `json:"control,omitempty"`
}

// LogLine is one line a job's module logged, as GET /v1/jobs/{id}/logs
// returns it.
type LogLine struct {
	// Seq numbers the job's lines from 1; ask for after=Seq to get the
	// next ones.
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Attempt  int       `json:"attempt"`
	Operator string    `json:"operator"`
	Subtask  int       `json:"subtask"`
	Level    string    `json:"level"`
	Message  string    `json:"message"`
}

// JobLogs is GET /v1/jobs/{id}/logs: the job's recent module log lines.
type JobLogs struct {
	Lines []LogLine `json:"lines"`
	// Next is the Seq to ask after for lines that come later.
	Next int64 `json:"next"`
	// Lost counts lines the coordinator no longer keeps (it keeps the
	// last few thousand of a job).
	Lost int64 `json:"lost"`
}
