// Package fdpass hands accepted data-plane connections from a TaskManager
// to the worker process that runs a job's tasks.
//
// Why: a TaskManager runs each job in a child process of that job's binary,
// so a job that panics or exhausts memory takes down only itself. Yet other
// TaskManagers know a TaskManager by ONE data-plane address: they cannot
// dial a port per job worker (ports come and go with jobs, and firewalls
// would have to know them). So the TaskManager owns the one data port and
// passes each job's data connections to that job's worker over a unix
// socket shared with the child (SCM_RIGHTS). Each connection starts with a
// short preamble that names the job (WritePreamble / ReadPreamble /
// Dialer). By default (internal/datamux) the connection the worker gets is
// one end of a socket pair (SocketPair) whose other end the TaskManager
// relays to a stream of its one multiplexed connection to the peer
// TaskManager. In direct mode (process.TaskManagerConfig.
// DirectDataConnections) peers' workers dial the data port themselves, and
// the TaskManager passes the accepted socket itself: after the handoff it
// holds no copy and sees no byte of the stream.
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
// Wire format of the preamble on a data connection (or a multiplexed
// stream): the 8 bytes "STRMJOB1", a uvarint length (1 to MaxJobIDLen) and
// the job id. The TaskManager reads exactly these bytes and nothing more,
// so the worker's endpoint finds the stream starting at its own
// handshake. Other headers share the format with their own 8-byte magic
// (WriteHeader, ReadMagic, ReadValue): internal/datamux's session and
// request headers, documented there.
package fdpass
