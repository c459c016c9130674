// Package fdpass hands accepted data-plane connections from a TaskManager
// to the worker process that runs a job's tasks.
//
// Why: a TaskManager runs each job in a child process of that job's binary,
// so a job that panics or exhausts memory takes down only itself. Yet other
// TaskManagers know a TaskManager by ONE data-plane address: they cannot
// dial a port per job worker (ports come and go with jobs, and firewalls
// would have to know them). So the TaskManager owns the one data port,
// accepts each connection, reads a short preamble that names the job
// (WritePreamble / ReadPreamble / Dialer), and passes the socket itself to
// that job's worker over a unix socket shared with the child (SCM_RIGHTS).
// After the handoff the TaskManager holds no copy and sees no byte of the
// stream: no proxy, no copy, no extra hop, and a job's traffic cannot be
// slowed by another job's in the TaskManager.
//
// The pieces:
//
//   - Pair makes the unix socket pair. The parent keeps a *Sender; the
//     child end goes to the worker through exec.Cmd.ExtraFiles.
//   - The worker wraps its end with Listen: a net.Listener whose Accept
//     returns the handed-over connections, ready for tcp.Config.Listener.
//     Its Addr is the TaskManager's advertised data address, since that is
//     where peers reach this worker.
//   - Before any connection flows, the worker tells the TaskManager its RPC
//     address with one hello message (Listener.Hello, Sender.ReadHello).
//   - A worker whose TaskManager died sees ErrParentGone from Accept (and
//     Listener.Gone closes): it must exit, since nobody can reach it any more.
//
// Wire format on the unix socket (a byte stream, so it is framed): each
// message is a kind byte, a 2-byte big-endian length and that many payload
// bytes. Kind 'H' (child to parent, once) carries the hello string. Kind 'C'
// (parent to child) carries the dialler's remote address and exactly one
// file descriptor in its SCM_RIGHTS control message; the kernel delivers
// the descriptor with the first byte of the message, so by the time the
// receiver has a whole 'C' frame its descriptor is queued, in order.
//
// Wire format of the preamble on a data connection: the 8 bytes "STRMJOB1",
// a uvarint length (1 to MaxJobIDLen) and the job id. The TaskManager reads
// exactly these bytes and nothing more, so the worker's endpoint finds the
// stream starting at its own handshake.
package fdpass
