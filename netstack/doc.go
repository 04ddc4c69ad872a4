// Package netstack will carry records between tasks: in-process queues
// inside a worker and QUIC streams between workers, both with credit-based
// flow control per channel. It is empty until the embedded engine lands.
package netstack
