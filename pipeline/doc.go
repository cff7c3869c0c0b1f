// Package pipeline is the domain of settle: money, the settlement plan, the
// step state machine and the step executor, the poll policy (which virtual
// accounts a poll cycle asks about, and when a payday is near), plus the
// interfaces it needs from the outside world (bank providers, the store, the
// queue, notifiers).
//
// It imports only the standard library. Adapters in store, bank, jobs and
// notify implement its interfaces; cmd/settle wires them together.
package pipeline
