package rest

// The JSON bodies of the API, field for field as Flink 1.16 writes them.
// Where the generated OpenAPI spec names fields differently from what
// Flink actually sends (its custom serialisers for JobDetails and
// JobConfigInfo), both sets are written, so scripts written against either
// keep working (see the package doc).

type dashboardConfig struct {
	RefreshInterval int64          `json:"refresh-interval"`
	TimezoneName    string         `json:"timezone-name"`
	TimezoneOffset  int            `json:"timezone-offset"`
	FlinkVersion    string         `json:"flink-version"`
	FlinkRevision   string         `json:"flink-revision"`
	Features        map[string]any `json:"features"`
}

type clusterOverview struct {
	TaskManagers   int    `json:"taskmanagers"`
	SlotsTotal     int    `json:"slots-total"`
	SlotsAvailable int    `json:"slots-available"`
	JobsRunning    int    `json:"jobs-running"`
	JobsFinished   int    `json:"jobs-finished"`
	JobsCancelled  int    `json:"jobs-cancelled"`
	JobsFailed     int    `json:"jobs-failed"`
	FlinkVersion   string `json:"flink-version"`
	FlinkCommit    string `json:"flink-commit"`
}

type jobIDWithStatus struct {
	ID     string   `json:"id"`
	Status JobState `json:"status"`
}

type jobsList struct {
	Jobs []jobIDWithStatus `json:"jobs"`
}

// jobOverview is one entry of /jobs/overview: Flink's wire fields (jid,
// name, state, start-time, ...) and the spec's (jobId, jobName, status, ...).
type jobOverview struct {
	JID              string         `json:"jid"`
	Name             string         `json:"name"`
	State            JobState       `json:"state"`
	StartTime        int64          `json:"start-time"`
	EndTime          int64          `json:"end-time"`
	Duration         int64          `json:"duration"`
	LastModification int64          `json:"last-modification"`
	Tasks            map[string]int `json:"tasks"`

	JobID          string   `json:"jobId"`
	JobName        string   `json:"jobName"`
	Status         JobState `json:"status"`
	StartTimeSpec  int64    `json:"startTime"`
	EndTimeSpec    int64    `json:"endTime"`
	LastUpdateTime int64    `json:"lastUpdateTime"`
	TasksPerState  []int    `json:"tasksPerState"`
	NumTasks       int      `json:"numTasks"`
}

type jobsOverview struct {
	Jobs []jobOverview `json:"jobs"`
}

type ioMetrics struct {
	ReadBytes            int64 `json:"read-bytes"`
	ReadBytesComplete    bool  `json:"read-bytes-complete"`
	WriteBytes           int64 `json:"write-bytes"`
	WriteBytesComplete   bool  `json:"write-bytes-complete"`
	ReadRecords          int64 `json:"read-records"`
	ReadRecordsComplete  bool  `json:"read-records-complete"`
	WriteRecords         int64 `json:"write-records"`
	WriteRecordsComplete bool  `json:"write-records-complete"`
}

// jobVertexSummary is a vertex inside /jobs/:jobid.
type jobVertexSummary struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	MaxParallelism int            `json:"maxParallelism"`
	Parallelism    int            `json:"parallelism"`
	Status         ExecState      `json:"status"`
	StartTime      int64          `json:"start-time"`
	EndTime        int64          `json:"end-time"`
	Duration       int64          `json:"duration"`
	Tasks          map[string]int `json:"tasks"`
	Metrics        ioMetrics      `json:"metrics"`
}

type jobDetails struct {
	JID            string             `json:"jid"`
	Name           string             `json:"name"`
	IsStoppable    bool               `json:"isStoppable"`
	State          JobState           `json:"state"`
	StartTime      int64              `json:"start-time"`
	EndTime        int64              `json:"end-time"`
	Duration       int64              `json:"duration"`
	MaxParallelism int                `json:"maxParallelism"`
	Now            int64              `json:"now"`
	Timestamps     map[string]int64   `json:"timestamps"`
	Vertices       []jobVertexSummary `json:"vertices"`
	StatusCounts   map[string]int     `json:"status-counts"`
	Plan           Plan               `json:"plan"`
}

type planInfo struct {
	Plan Plan `json:"plan"`
}

type subtaskDetails struct {
	Subtask       int       `json:"subtask"`
	Status        ExecState `json:"status"`
	Attempt       int       `json:"attempt"`
	Host          string    `json:"host"`
	StartTime     int64     `json:"start-time"`
	EndTime       int64     `json:"end-time"`
	Duration      int64     `json:"duration"`
	Metrics       ioMetrics `json:"metrics"`
	TaskManagerID string    `json:"taskmanager-id"`
}

type vertexDetails struct {
	ID             string           `json:"id"`
	Name           string           `json:"name"`
	Parallelism    int              `json:"parallelism"`
	MaxParallelism int              `json:"maxParallelism"`
	Now            int64            `json:"now"`
	Subtasks       []subtaskDetails `json:"subtasks"`
}

type subtaskBackPressure struct {
	Subtask           int     `json:"subtask"`
	AttemptNumber     int     `json:"attempt-number"`
	BackPressureLevel string  `json:"backpressure-level"`
	Ratio             float64 `json:"ratio"`
	IdleRatio         float64 `json:"idleRatio"`
	BusyRatio         float64 `json:"busyRatio"`
}

type vertexBackPressure struct {
	Status            string                `json:"status"`
	BackPressureLevel string                `json:"backpressure-level"`
	EndTimestamp      int64                 `json:"end-timestamp"`
	Subtasks          []subtaskBackPressure `json:"subtasks"`
}

type metric struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

type exceptionInfo struct {
	ExceptionName string `json:"exceptionName"`
	Stacktrace    string `json:"stacktrace"`
	Timestamp     int64  `json:"timestamp"`
	TaskName      string `json:"taskName"`
	Location      string `json:"location"`
}

type rootExceptionInfo struct {
	exceptionInfo
	Concurrent []exceptionInfo `json:"concurrentExceptions"`
}

type executionException struct {
	Exception string `json:"exception"`
	Task      string `json:"task"`
	Location  string `json:"location"`
	Timestamp int64  `json:"timestamp"`
}

type exceptionHistory struct {
	Entries   []rootExceptionInfo `json:"entries"`
	Truncated bool                `json:"truncated"`
}

type jobExceptions struct {
	RootException string               `json:"root-exception,omitempty"`
	Timestamp     int64                `json:"timestamp,omitempty"`
	AllExceptions []executionException `json:"all-exceptions"`
	Truncated     bool                 `json:"truncated"`
	History       exceptionHistory     `json:"exceptionHistory"`
}

type executionConfig struct {
	ExecutionMode   string            `json:"execution-mode"`
	RestartStrategy string            `json:"restart-strategy"`
	JobParallelism  int               `json:"job-parallelism"`
	ObjectReuseMode bool              `json:"object-reuse-mode"`
	UserConfig      map[string]string `json:"user-config"`
}

// jobConfig is /jobs/:jobid/config: Flink's wire fields (jid, name,
// execution-config) and the spec's (jobId, jobName, executionConfigInfo).
type jobConfig struct {
	JID             string          `json:"jid"`
	Name            string          `json:"name"`
	ExecutionConfig executionConfig `json:"execution-config"`

	JobID               string          `json:"jobId"`
	JobName             string          `json:"jobName"`
	ExecutionConfigInfo executionConfig `json:"executionConfigInfo"`
}

type checkpointConfig struct {
	Mode                         string          `json:"mode"`
	Interval                     int64           `json:"interval"`
	Timeout                      int64           `json:"timeout"`
	MinPause                     int64           `json:"min_pause"`
	MaxConcurrent                int             `json:"max_concurrent"`
	Externalization              externalization `json:"externalization"`
	StateBackend                 string          `json:"state_backend"`
	CheckpointStorage            string          `json:"checkpoint_storage"`
	Unaligned                    bool            `json:"unaligned_checkpoints"`
	TolerableFailed              int             `json:"tolerable_failed_checkpoints"`
	AlignedTimeout               int64           `json:"aligned_checkpoint_timeout"`
	CheckpointsAfterTasksFinish  bool            `json:"checkpoints_after_tasks_finish"`
	ChangelogMaterialization     int64           `json:"changelog_periodic_materialization_interval"`
	ChangelogStorage             string          `json:"changelog_storage"`
	SavepointDirectoryConfigured bool            `json:"strom_savepoint_directory_configured"`
}

type externalization struct {
	Enabled              bool `json:"enabled"`
	DeleteOnCancellation bool `json:"delete_on_cancellation"`
}

type checkpointCounts struct {
	Restored   int `json:"restored"`
	Total      int `json:"total"`
	InProgress int `json:"in_progress"`
	Completed  int `json:"completed"`
	Failed     int `json:"failed"`
}

type statsSummary struct {
	Min  int64   `json:"min"`
	Max  int64   `json:"max"`
	Avg  int64   `json:"avg"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

type checkpointSummary struct {
	CheckpointedSize   statsSummary   `json:"checkpointed_size"`
	StateSize          statsSummary   `json:"state_size"`
	EndToEndDuration   statsSummary   `json:"end_to_end_duration"`
	AlignmentBuffered  statsSummary   `json:"alignment_buffered"`
	ProcessedData      statsSummary   `json:"processed_data"`
	PersistedData      statsSummary   `json:"persisted_data"`
	CheckpointDuration map[string]any `json:"checkpoint_duration"`
	Alignment          map[string]any `json:"alignment"`
	StartDelay         statsSummary   `json:"start_delay"`
}

// taskCheckpoint is one vertex's part of a checkpoint (Flink's
// TaskCheckpointStatistics).
type taskCheckpoint struct {
	ID              int64            `json:"id"`
	Status          CheckpointStatus `json:"status"`
	LatestAck       int64            `json:"latest_ack_timestamp"`
	CheckpointedSz  int64            `json:"checkpointed_size"`
	StateSize       int64            `json:"state_size"`
	EndToEnd        int64            `json:"end_to_end_duration"`
	AlignmentBuffer int64            `json:"alignment_buffered"`
	ProcessedData   int64            `json:"processed_data"`
	PersistedData   int64            `json:"persisted_data"`
	NumSubtasks     int              `json:"num_subtasks"`
	NumAcked        int              `json:"num_acknowledged_subtasks"`
}

// checkpointStatistics is one checkpoint: Flink's CheckpointStatistics
// with the fields of its completed/failed subclasses; className says which
// ("completed", "failed", "in_progress").
type checkpointStatistics struct {
	// The fields a checkpoint shares with each of its tasks' parts.
	taskCheckpoint
	ClassName      string                    `json:"className"`
	IsSavepoint    bool                      `json:"is_savepoint"`
	Triggered      int64                     `json:"trigger_timestamp"`
	CheckpointType string                    `json:"checkpoint_type"`
	Tasks          map[string]taskCheckpoint `json:"tasks"`
	ExternalPath   *string                   `json:"external_path,omitempty"`
	Discarded      *bool                     `json:"discarded,omitempty"`
	FailureTime    *int64                    `json:"failure_timestamp,omitempty"`
	FailureMessage *string                   `json:"failure_message,omitempty"`
}

type restoredCheckpoint struct {
	ID           int64  `json:"id"`
	RestoreTime  int64  `json:"restore_timestamp"`
	IsSavepoint  bool   `json:"is_savepoint"`
	ExternalPath string `json:"external_path"`
}

type latestCheckpoints struct {
	Completed *checkpointStatistics `json:"completed,omitempty"`
	Savepoint *checkpointStatistics `json:"savepoint,omitempty"`
	Failed    *checkpointStatistics `json:"failed,omitempty"`
	Restored  *restoredCheckpoint   `json:"restored,omitempty"`
}

type checkpointingStatistics struct {
	Counts  checkpointCounts       `json:"counts"`
	Summary checkpointSummary      `json:"summary"`
	Latest  latestCheckpoints      `json:"latest"`
	History []checkpointStatistics `json:"history"`
}

type triggerResponse struct {
	RequestID string `json:"request-id"`
}

type queueStatus struct {
	ID string `json:"id"`
}

// failureCause is Flink's SerializedThrowable as it reaches JSON: the
// class, the stack trace, and the serialised form (here the message).
type failureCause struct {
	Class      string `json:"class"`
	StackTrace string `json:"stack-trace"`
	Serialized string `json:"serialized-throwable"`
}

type operationInfo struct {
	Location     *string       `json:"location,omitempty"`
	CheckpointID *int64        `json:"checkpointId,omitempty"`
	FailureCause *failureCause `json:"failure-cause,omitempty"`
}

type asyncResult struct {
	Status    queueStatus    `json:"status"`
	Operation *operationInfo `json:"operation,omitempty"`
}

type savepointTriggerBody struct {
	TargetDirectory string `json:"target-directory"`
	CancelJob       bool   `json:"cancel-job"`
	FormatType      string `json:"formatType"`
	TriggerID       string `json:"triggerId"`
}

type stopBody struct {
	TargetDirectory string `json:"targetDirectory"`
	Drain           bool   `json:"drain"`
	FormatType      string `json:"formatType"`
	TriggerID       string `json:"triggerId"`
}

type disposalBody struct {
	SavepointPath *string `json:"savepoint-path"`
}

type taskManagerInfo struct {
	ID                     string         `json:"id"`
	Path                   string         `json:"path"`
	DataPort               int            `json:"dataPort"`
	JmxPort                int            `json:"jmxPort"`
	TimeSinceLastHeartbeat int64          `json:"timeSinceLastHeartbeat"`
	SlotsNumber            int            `json:"slotsNumber"`
	FreeSlots              int            `json:"freeSlots"`
	TotalResource          resourceProf   `json:"totalResource"`
	FreeResource           resourceProf   `json:"freeResource"`
	Hardware               hardware       `json:"hardware"`
	MemoryConfiguration    map[string]any `json:"memoryConfiguration"`
}

type resourceProf struct {
	CPUCores          float64            `json:"cpuCores"`
	TaskHeapMemory    int                `json:"taskHeapMemory"`
	TaskOffHeapMemory int                `json:"taskOffHeapMemory"`
	ManagedMemory     int                `json:"managedMemory"`
	NetworkMemory     int                `json:"networkMemory"`
	ExtendedResources map[string]float64 `json:"extendedResources"`
}

type hardware struct {
	CPUCores       int   `json:"cpuCores"`
	PhysicalMemory int64 `json:"physicalMemory"`
	FreeMemory     int64 `json:"freeMemory"`
	ManagedMemory  int64 `json:"managedMemory"`
}

type taskManagersInfo struct {
	TaskManagers []taskManagerInfo `json:"taskmanagers"`
}

type slotInfo struct {
	JobID    string       `json:"jobId"`
	Resource resourceProf `json:"resource"`
}

type taskManagerMetrics struct {
	HeapUsed                            int64 `json:"heapUsed"`
	HeapCommitted                       int64 `json:"heapCommitted"`
	HeapMax                             int64 `json:"heapMax"`
	NettyShuffleMemorySegmentsTotal     int64 `json:"nettyShuffleMemorySegmentsTotal"`
	NettyShuffleMemorySegmentsAvailable int64 `json:"nettyShuffleMemorySegmentsAvailable"`
	NettyShuffleMemorySegmentsUsed      int64 `json:"nettyShuffleMemorySegmentsUsed"`
	GarbageCollectors                   []any `json:"garbageCollectors"`
}

type taskManagerDetails struct {
	taskManagerInfo
	AllocatedSlots []slotInfo         `json:"allocatedSlots"`
	Metrics        taskManagerMetrics `json:"metrics"`
}

type jarEntry struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

type jarFile struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Uploaded int64      `json:"uploaded"`
	Entry    []jarEntry `json:"entry"`
}

type jarList struct {
	Address string    `json:"address"`
	Files   []jarFile `json:"files"`
}

type jarUpload struct {
	Filename string `json:"filename"`
	Status   string `json:"status"`
}

type jarRunBody struct {
	EntryClass            string   `json:"entryClass"`
	ProgramArgs           string   `json:"programArgs"`
	ProgramArgsList       []string `json:"programArgsList"`
	Parallelism           *int     `json:"parallelism"`
	JobID                 string   `json:"jobId"`
	AllowNonRestoredState *bool    `json:"allowNonRestoredState"`
	SavepointPath         string   `json:"savepointPath"`
	RestoreMode           string   `json:"restoreMode"`
}

type jarRunResponse struct {
	JobID string `json:"jobid"`
}

// jobSubmitBody is the "request" part of POST /jobs: Flink's
// JobSubmitRequestBody and Strom's extensions (what Flink keeps in its
// serialised JobGraph).
type jobSubmitBody struct {
	JobGraphFileName     string           `json:"jobGraphFileName"`
	JobJarFileNames      []string         `json:"jobJarFileNames"`
	JobArtifactFileNames []map[string]any `json:"jobArtifactFileNames"`

	JobID                 string   `json:"jobId"`
	ProgramArgsList       []string `json:"programArgsList"`
	SavepointPath         string   `json:"savepointPath"`
	AllowNonRestoredState bool     `json:"allowNonRestoredState"`
	RestoreMode           string   `json:"restoreMode"`
}

type jobSubmitResponse struct {
	JobURL string `json:"jobUrl"`
}

// jobResult is a job's result in /jobs/:jobid/execution-result: Flink's
// wire fields (id, application-status, accumulator-results, net-runtime,
// failure-cause) and the spec's (jobId, applicationStatus, ...).
type jobResult struct {
	ID                string         `json:"id"`
	ApplicationStatus string         `json:"application-status"`
	Accumulators      map[string]any `json:"accumulator-results"`
	NetRuntime        int64          `json:"net-runtime"`
	FailureCause      *failureCause  `json:"failure-cause,omitempty"`

	JobID               string         `json:"jobId"`
	AppStatus           string         `json:"applicationStatus"`
	AccumulatorResults  map[string]any `json:"accumulatorResults"`
	NetRuntimeSpec      int64          `json:"netRuntime"`
	Success             bool           `json:"success"`
	SerializedThrowable *failureCause  `json:"serializedThrowable,omitempty"`
}

type executionResult struct {
	Status queueStatus `json:"status"`
	Result *jobResult  `json:"job-execution-result,omitempty"`
}
