// Package coordinator will hold the cluster's control plane: the Dispatcher
// (REST API, one JobManager per job), the JobManager (execution graph,
// scheduling, checkpoint coordination, restarts) and the ResourceManager
// (workers and slots), with ZooKeeper-based high availability. It is empty
// until the embedded engine lands; see docs/RATIONALE.md for the plan.
package coordinator
