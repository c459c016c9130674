// Package heartbeat is failure detection between Strom's roles: a
// heartbeat monitor, as a pure state machine in the manner of
// internal/scheduler and internal/checkpoint. The ResourceManager watches
// its TaskManagers with one, a JobMaster the TaskManagers it deploys to,
// and a TaskManager watches its ResourceManager and JobMasters (Flink's
// HeartbeatManager, sender and receiver sides).
//
// Events go in through Monitor.Handle — a target added or removed, a
// heartbeat from a target (the answer to our request, or the target's own
// request, each with a payload the owner may use, e.g. a TaskManager's
// slot report), the transport's report that the connection to a target is
// lost, a tick of the clock — and actions come out: send a heartbeat
// request to a target, a target's payload to use, a target timed out, a
// target lost, a target that resumed after it was declared dead. The
// monitor starts no goroutines, does no I/O and reads no clock: time comes
// in with EvTick, and every other event happens at the time of the last
// tick, so a shell ticks before it feeds a batch of messages (as the
// JobMaster does for its Scheduler) and sets one timer for NextTick.
//
// # Failure detection
//
// A target is alive from EvAdd on. Every sign of life (EvHeartbeat) sets
// its last-seen time; the first tick at or after last seen + Timeout
// declares it dead with ActTimedOut: a target silent for exactly Timeout
// is dead. A process that dies is normally noticed sooner, by the
// transport: EvConnectionLost declares the target dead at once
// (ActLost), without waiting for the timeout. A silent process (frozen
// with SIGSTOP, stuck in a long GC, cut off by a partition that keeps TCP
// half open) is only found by the timeout.
//
// The defaults are an Interval of 1 s and a Timeout of 5 s. Flink's
// defaults (10 s and 50 s) are a known pain: a TaskManager that froze
// keeps its slots and holds back the job's recovery for most of a minute,
// which is longer than the restart itself. Five missed heartbeats are
// still far above a healthy process's scheduling hiccups.
//
// # Incarnations and fencing
//
// Each life of a target is an incarnation, numbered from 1 per target:
// EvAdd starts one (also for a target already present: the owner
// re-registered it), and a target declared dead is declared so once per
// incarnation — a timeout after a connection loss, or a second loss, is
// not reported again. A dead target stays known until EvRemove and gets no
// more requests. If a heartbeat comes from it anyway (a late answer, a
// process that woke up after SIGSTOP, a connection that came back), the
// monitor does not quietly take it back: it reports ActResumed with the
// new incarnation, and monitors it again from then on. The owner has
// already failed that target's work when it was declared dead, so it must
// fence the resumed one — tell it that its attempts are stale, make it
// re-register — before it trusts its payload; the payload of a resumed
// target comes only in ActResumed, never as an ActHeartbeat.
//
// Heartbeats of a target the monitor does not know (never added, or
// removed) are dropped: the owner removed it and has nothing to do with
// it.
package heartbeat
