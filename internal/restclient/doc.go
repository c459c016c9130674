// Package restclient is a typed client of Strom's REST API, which follows
// Flink's REST API v1 (paths and JSON field names of Flink 1.16; the server
// is internal/rest). The CLI (strom run, list, cancel, stop, savepoint,
// checkpoint) and a job binary that submits itself (strom.Config.Cluster)
// both talk to a cluster only through it.
//
// Every call takes a context. Errors say what went wrong in the caller's
// terms:
//
//   - a cluster that does not answer is "cannot reach the JobManager at
//     URL: ..." (an *UnreachableError);
//   - a 404 on a job's path wraps ErrUnknownJob and names the job id;
//   - any other refusal is an *APIError carrying the status and the
//     server's {"errors": [...]} text.
//
// Savepoints, stops with savepoint and savepoint disposals are
// asynchronous in the API (a POST answers with a trigger id); the client
// polls the trigger id every PollInterval until the operation is
// COMPLETED, the context ends, or OperationTimeout has passed.
//
// The cluster's address comes from --jobmanager, else $STROM_JOBMANAGER,
// else http://127.0.0.1:8081 (Flink's default REST port): see Address.
package restclient
