// Package coordinator is the cluster's control plane, in subpackages:
//
//   - jobspec and plan: job specs, validated with positions, and their
//     execution plans (chains, slot sharing, key groups, descriptors);
//   - dispatcher and registry: the REST API under /v1 and the module
//     registry behind it;
//   - execgraph, slots, restart and checkpoint: deterministic cores — the
//     execution graph of a job attempt, the slot pool, restart strategies
//     and the checkpoint coordinator — stepped by events, tested by scripts;
//   - cluster: the ResourceManager and a JobManager per job on the network,
//     stepping those cores with what workers report.
//
// Nothing here imports worker/; what both sides share lives under
// internal/ (deploy, control, connspec, api, barrier, snapshot, splits).
package coordinator
