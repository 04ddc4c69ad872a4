// Package control holds the messages between the coordinator and its
// workers: registration, heartbeats with task reports, and the commands a
// worker long-polls for (deploy, cancel). They travel as JSON over HTTPS
// with the cluster's certificates on both sides (see docs/RATIONALE.md,
// "How does control traffic travel?"). It imports neither side.
package control

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/weirstream/weir/internal/ckptmeta"
)

// Paths of the coordinator's control endpoints.
const (
	PathRegister  = "/control/v1/register"
	PathHeartbeat = "/control/v1/heartbeat"
	PathCommands  = "/control/v1/commands" // ?worker=ID, long-poll
	PathAcks      = "/control/v1/acks"     // checkpoint acknowledgements
)

// Limits on what a peer may send.
const (
	MaxBody    = 32 << 20 // a command batch carries descriptors
	MaxTasks   = 4096     // reports per heartbeat
	MaxLogs    = 2000     // log lines per heartbeat
	MaxLogLine = 4096     // bytes of a log line's message
	MaxIDBytes = 128
)

// Register is a worker's registration.
type Register struct {
	Worker   string `json:"worker"`
	DataAddr string `json:"data_addr"` // its QUIC transport
	Slots    int    `json:"slots"`
}

// Registered answers a registration.
type Registered struct {
	HeartbeatInterval Duration `json:"heartbeat_interval"`
	// ModulesURL is where the worker fetches modules by digest
	// (ModulesURL + "/" + digest).
	ModulesURL string `json:"modules_url"`
}

// Heartbeat says a worker is alive and how its tasks are.
type Heartbeat struct {
	Worker string       `json:"worker"`
	Tasks  []TaskReport `json:"tasks,omitempty"`
	// Logs are the module log lines since the last heartbeat.
	Logs []LogLine `json:"logs,omitempty"`
}

// LogLine is one line a module logged.
type LogLine struct {
	Job      string    `json:"job"`
	Attempt  int       `json:"attempt"`
	Operator string    `json:"operator"`
	Subtask  int       `json:"subtask"`
	Time     time.Time `json:"time"`
	Level    string    `json:"level"`
	Message  string    `json:"message"`
}

// HeartbeatReply tells a worker whether the coordinator knows it; an
// unknown worker registers again.
type HeartbeatReply struct {
	Known bool `json:"known"`
}

// TaskReport is the state of one subtask a worker runs.
type TaskReport struct {
	Job     string          `json:"job"`
	Attempt int             `json:"attempt"`
	Vertex  int             `json:"vertex"`
	Index   int             `json:"index"`
	State   string          `json:"state"` // deploying, running, finished, canceled, failed
	Cause   string          `json:"cause,omitempty"`
	Metrics json.RawMessage `json:"metrics,omitempty"` // api.SubtaskMetrics
}

// Command is one thing the coordinator asks of a worker.
type Command struct {
	// Deploy carries an encoded deploy.Descriptor.
	Deploy json.RawMessage `json:"deploy,omitempty"`
	// Cancel names a job attempt whose tasks on the worker must stop.
	Cancel *Cancel `json:"cancel,omitempty"`
	// Stop names a job attempt whose sources on the worker must end, so
	// the job drains and finishes.
	Stop *Cancel `json:"stop,omitempty"`
	// Checkpoint asks the worker's subtasks of a job attempt to inject a
	// checkpoint's barrier, or tells them it completed or was aborted.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// Checkpoint commands.
const (
	CheckpointTrigger  = "trigger"
	CheckpointComplete = "complete"
	CheckpointAbort    = "abort"
)

// Checkpoint is a checkpoint command for one job attempt.
type Checkpoint struct {
	Job       string `json:"job"`
	Attempt   int    `json:"attempt"`
	Do        string `json:"do"` // CheckpointTrigger, CheckpointComplete or CheckpointAbort
	ID        uint64 `json:"id"`
	Mode      string `json:"mode,omitempty"`
	Savepoint bool   `json:"savepoint,omitempty"`
	// Final, with CheckpointComplete: the job's final checkpoint; the
	// tasks end once they committed.
	Final bool `json:"final,omitempty"`
}

// MaxAcks bounds the acknowledgements of one Acks message.
const MaxAcks = 4096

// Acks carries a worker's checkpoint acknowledgements.
type Acks struct {
	Worker string   `json:"worker"`
	Acks   []JobAck `json:"acks"`
}

// JobAck is a subtask's acknowledgement of a checkpoint of a job.
type JobAck struct {
	Job string       `json:"job"`
	Ack ckptmeta.Ack `json:"ack"`
}

// Cancel stops a job attempt's tasks on a worker.
type Cancel struct {
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
}

// Commands is a long-poll's answer.
type Commands struct {
	Commands []Command `json:"commands,omitempty"`
	// Unknown is set when the coordinator does not know the worker.
	Unknown bool `json:"unknown,omitempty"`
}

// Duration travels as a Go duration string.
type Duration time.Duration

// MarshalJSON writes d as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("control: a duration must be a string: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	*d = Duration(v)
	return nil
}

// CheckID checks a worker or job id from a peer: printable ASCII without
// path characters, bounded.
func CheckID(what, id string) error {
	if id == "" || len(id) > MaxIDBytes {
		return fmt.Errorf("control: %s id must have 1 to %d bytes", what, MaxIDBytes)
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c >= 0x7f || c == '/' || c == '\\' {
			return fmt.Errorf("control: %s id %q has a character outside printable ASCII or a path separator", what, id)
		}
	}
	return nil
}
