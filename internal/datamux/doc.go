// Package datamux gives each pair of TaskManagers ONE TCP connection and
// multiplexes every job's data streams over it (issue 12.3), while each
// job's tasks still run in their own worker process (internal/jobworker).
//
// Why: with a worker per job, a worker dialling peers itself makes one
// connection per pair of workers, per job and per direction: sockets,
// handshakes and TCP windows grow with the number of jobs. Here the
// TaskManager owns the connection to each peer TaskManager (a yamux
// session, github.com/hashicorp/yamux) and relays bytes between it and its
// workers over local unix sockets. Each yamux stream has its own
// flow-control window, so a job whose consumer stops reading fills only
// its own stream's window: other jobs' streams on the session go on.
//
// The price is a copy through the TaskManager on each side (the direct
// handoff of internal/fdpass passes the socket itself and copies nothing);
// process.TaskManagerConfig.DirectDataConnections keeps that mode.
//
// The pieces, all in Mux:
//
//   - Serve accepts on the TaskManager's data port. A connection opening
//     with the session header is a peer TaskManager's session; one opening
//     with fdpass's job preamble is a direct connection from a worker of a
//     peer in direct mode, handed to the job's worker as before.
//   - Open returns a stream to a peer TaskManager (by its advertised data
//     address), dialling the session first if there is none.
//   - ServeWorkers accepts the workers' requests on a unix socket in the
//     TaskManager's directory: each request names a peer, and the
//     TaskManager relays the request's connection to a new stream to that
//     peer. WorkerDialer is the workers' side (for tcp.Config.Dial).
//   - A stream arriving from a peer starts with fdpass's job preamble: the
//     TaskManager makes a socket pair, hands one end to the job's worker
//     (Config.Hand, i.e. fdpass.Sender.Send) and relays between the other
//     end and the stream. The worker's fdpass.Listener and tcp.Endpoint see
//     an ordinary handed-over connection.
//
// A unix socket for the workers' requests (rather than asking over the
// fdpass socket pair) keeps the fdpass protocol one-way for connections
// and lets concurrent dials of a worker proceed independently: a dial is
// a connect and one header.
//
// One session per pair, both directions: a session carries streams opened
// by either side, whichever side dialled it. When both sides dial at once,
// the race is settled in the handshake, before either session carries a
// stream: a side that receives the peer's session header while its own
// dial to that peer is in flight (or done, the session answering a ping)
// refuses the peer's session if its own address is the smaller (string
// order), and the refused side waits for the winner's session instead of
// dialling again. While a side accepts a session, its own streams to that
// peer wait for it rather than dial. A session that fails is dropped; the
// next Open dials again. A second session that still comes up (the peer
// lost the first one without this side noticing yet) replaces the first,
// which is closed once it has carried no stream for two checks in a row.
//
// Closing and errors: a relay passes an EOF on as a half-close (CloseWrite
// on the unix side, yamux's Close — a FIN — on the stream). A stream whose
// session died reads EOF too in yamux; the relay then closes the local
// end outright, and a worker that went away makes the relay close the
// stream and drain it, so the peer's writer never stalls on a full window.
// A peer TaskManager killed ends its TCP connection, so every stream on it
// ends at once and the tasks on both sides fail and recover.
//
// Wire formats. Every header has fdpass's preamble format (fdpass/doc.go):
// an 8-byte magic, a uvarint length and a value.
//
//   - Session (TCP, dialler first): "STRMMUX1" and the dialler's
//     advertised data address; the acceptor answers "STRMMUX1" and its own
//     (accepted), or "STRMMUXR" and its own (refused: it won a dial race;
//     it closes the connection). An accepted connection is a yamux session
//     (the dialler is yamux's client), read and written only by yamux from
//     then on.
//   - Stream: fdpass's job preamble ("STRMJOB1", job id), written by the
//     worker's dialler and relayed unchanged, then the endpoint's bytes.
//   - Worker request (unix socket): "STRMOPN1" and the peer TaskManager's
//     data address; then the job preamble and the endpoint's bytes, relayed
//     to the stream. No answer: a request that cannot be served is closed,
//     and the worker's endpoint sees its handshake fail and dials again.
package datamux
