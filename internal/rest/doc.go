// Package rest is Strom's REST API: Flink's REST API v1 (paths and JSON
// field names of Flink 1.16; the spec, an OpenAPI 3.0 file, is copied in
// testdata/flink-rest-v1.16.yml)
// served over a Cluster, the interface through which the handlers read and
// act (the Dispatcher implements it; see cluster.go for its contract).
//
// Server is the one place the REST listener is created: loopback
// (127.0.0.1:8081) unless an address is given, because the API runs
// uploaded binaries. Handlers use net/http's ServeMux patterns; every path
// is also served under /v1, as in Flink.
//
// # Endpoints
//
//	GET    /config                         DashboardConfiguration
//	GET    /overview                       ClusterOverviewWithVersion
//	GET    /jobs                           JobIdsWithStatusOverview
//	POST   /jobs                           202 JobSubmitResponseBody (multipart: "request", JobGraph, binary)
//	GET    /jobs/overview                  MultipleJobsDetails
//	GET    /jobs/:jobid                    JobDetailsInfo
//	PATCH  /jobs/:jobid?mode=cancel        202 {}; 409 if the job has ended
//	GET    /jobs/:jobid/status             JobStatusInfo
//	GET    /jobs/:jobid/execution-result   JobExecutionResultResponseBody (attached clients wait on it)
//	GET    /jobs/:jobid/plan               JobPlanInfo
//	GET    /jobs/:jobid/exceptions         JobExceptionsInfoWithHistory (?maxExceptions=N)
//	GET    /jobs/:jobid/config             JobConfigInfo
//	GET    /jobs/:jobid/checkpoints        CheckpointingStatistics
//	GET    /jobs/:jobid/checkpoints/config CheckpointConfigInfo (404 without checkpointing)
//	GET    /jobs/:jobid/checkpoints/details/:checkpointid  CheckpointStatistics
//	GET    /jobs/:jobid/vertices/:vertexid               JobVertexDetailsInfo
//	GET    /jobs/:jobid/vertices/:vertexid/backpressure  JobVertexBackPressureInfo
//	GET    /jobs/:jobid/vertices/:vertexid/watermarks    MetricCollectionResponseBody
//	POST   /jobs/:jobid/savepoints         202 TriggerResponse
//	POST   /jobs/:jobid/stop               202 TriggerResponse
//	GET    /jobs/:jobid/savepoints/:triggerid  AsynchronousOperationResult (savepoints and stops)
//	POST   /savepoint-disposal             200 TriggerResponse
//	GET    /savepoint-disposal/:triggerid  AsynchronousOperationResult
//	GET    /taskmanagers                   TaskManagersInfo
//	GET    /taskmanagers/:taskmanagerid    TaskManagerDetailsInfo
//	GET    /jars                           JarListInfo
//	POST   /jars/upload                    JarUploadResponseBody (multipart, field "jarfile")
//	DELETE /jars/:jarid                    200 {}
//	GET    /jars/:jarid/plan, POST         JobPlanInfo
//	POST   /jars/:jarid/run                JarRunResponseBody
//
// # Errors
//
// Every error is JSON {"errors": ["..."]}: 400 for a malformed id, query
// parameter or body (unknown fields, wrong types and trailing data are
// refused, an empty body is "{}" as in Flink), 404 for an unknown path or
// id (job, vertex, checkpoint, trigger, TaskManager, binary; also a binary
// id that names a path), 405 with an
// Allow header for a method the path does not take, 409 for a request the
// job's state refuses, 413 for a body over Config.MaxBodyBytes or an upload
// over Config.MaxUploadBytes, 429 when too many asynchronous operations are
// kept, 503 when the request was cancelled. 500 is only for a Cluster
// failure that is none of these (or a bug: a handler's panic is recovered,
// logged and answered 500).
//
// # Asynchronous operations
//
// Savepoints, stops and disposals run in the background (the Server keeps
// them, as Flink's CompletedOperationCache does): the POST answers at once
// with a trigger id, the GET by trigger id says IN_PROGRESS or COMPLETED
// with the savepoint's location or the failure. A client may choose the
// trigger id (triggerId in the body); repeating the POST with it starts
// nothing new. Results are kept for Config.OperationTTL after the
// operation ends; Server.Close cancels the running ones and waits for them.
//
// # Extensions and deviations from Flink's spec
//
//   - A "jar" is a job binary: a Go executable that imports strom. The paths
//     and fields are Flink's; the upload accepts any file in the multipart
//     field "jarfile" and the Cluster decides whether it is a job binary
//     (400 if not). entryClass is passed to the Cluster (a Go binary has one
//     entry point, main). The upload's "filename" is the stored path, whose
//     last element is the id used in /jars/:jarid, as in Flink.
//   - POST /jobs (Flink's client submission) takes a part "request" first
//     (JobSubmitRequestBody), then the files it names: jobGraphFileName is
//     Strom's JobGraph as JSON (internal/jobgraph), jobJarFileNames exactly
//     one job binary; artifacts are refused. Flink keeps the job id and
//     savepoint settings in its serialised JobGraph; Strom's request adds
//     them as fields: jobId, programArgsList (the arguments every process
//     runs the binary's main with, to rebuild the same graph),
//     savepointPath, allowNonRestoredState, restoreMode.
//   - Error bodies ({"errors": [...]}) are not in Flink's spec; the tests
//     validate them against an added ErrorResponseBody schema.
//   - /jobs/overview entries carry both Flink's wire fields (jid, name,
//     state, start-time, end-time, duration, last-modification, tasks) and
//     the fields Flink's generated spec names (jobId, jobName, status,
//     startTime, endTime, lastUpdateTime, tasksPerState, numTasks); likewise
//     /jobs/:jobid/config carries jid, name, execution-config and jobId,
//     jobName, executionConfigInfo, and /jobs/:jobid/execution-result's
//     result id, application-status, accumulator-results, net-runtime,
//     failure-cause and jobId, applicationStatus, accumulatorResults,
//     netRuntime, success, serializedThrowable. Flink's custom serialisers write the
//     former, its spec documents the latter; scripts use either.
//   - /jobs/:jobid's "plan" is an object (Flink writes raw JSON there; its
//     spec says string).
//   - Backpressure comes from measured back-pressured, idle and busy time
//     per second (Subtask.BackPressuredMsPerSecond, ...), as in Flink 1.13+:
//     ratio ≤ 0.10 ok, ≤ 0.5 low, else high; the vertex's level is its worst
//     subtask's. Subtasks also carry "attempt-number" (Flink 1.17 has it).
//   - Watermarks are "<subtask>.currentInputWatermark"; a subtask without
//     one reports Long.MIN_VALUE, as Flink does.
//   - /jobs/:jobid/checkpoints/config adds
//     "strom_savepoint_directory_configured".
//   - Asynchronous failures carry "failure-cause": {"class",
//     "stack-trace", "serialized-throwable"}; the last is the message in
//     base64, as there is no Java serialisation.
//   - PATCH /jobs/:jobid?mode=stop is refused with 400 (Flink 1.16 no longer
//     supports it either): stop with POST /jobs/:jobid/stop.
package rest
