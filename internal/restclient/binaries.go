package restclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"os"
	"path"
	"path/filepath"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// Binary is an uploaded job binary (Flink's jar) of /jars.
type Binary struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Uploaded int64  `json:"uploaded"`
}

// RunOptions are how an uploaded binary is run (/jars/:jarid/run) or a
// job submitted (POST /jobs).
type RunOptions struct {
	// Args are the program's arguments: every process of the job runs
	// the binary's main with them, to build the same graph.
	Args []string
	// Parallelism overrides the job's default parallelism (0: the
	// program's own).
	Parallelism int
	// SavepointPath is a savepoint to start from; AllowNonRestoredState
	// lets the job start when some of its state matches no operator.
	SavepointPath         string
	AllowNonRestoredState bool
	// JobID is the id to give the job (32 hex digits; "": the cluster
	// chooses).
	JobID string
}

// multipartBody streams the parts that write writes as a request body,
// so a large binary is never held in memory. wait returns write's error
// once the body has been consumed or closed.
func multipartBody(write func(*multipart.Writer) error) (body io.ReadCloser, contentType string, wait func() error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan error, 1)
	go func() {
		err := write(mw)
		if err == nil {
			err = mw.Close()
		}
		// The transport closes pr when it stops reading (an early
		// answer or a failed connection); then writes fail and this
		// goroutine ends.
		_ = pw.CloseWithError(err)
		done <- err
	}()
	return pr, mw.FormDataContentType(), func() error {
		_ = pr.Close()
		return <-done
	}
}

// copyFile writes the file at p as a part.
func copyFile(mw *multipart.Writer, field, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := mw.CreateFormFile(field, filepath.Base(p))
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	return nil
}

// UploadBinary uploads the job binary at file (POST /jars/upload, field
// "jarfile") and returns its id in /jars.
func (c *Client) UploadBinary(ctx context.Context, file string) (string, error) {
	// Open it here too, so that a missing file is a plain error rather
	// than a half-sent request.
	if _, err := os.Stat(file); err != nil {
		return "", fmt.Errorf("uploading job binary: %w", err)
	}
	body, ct, wait := multipartBody(func(mw *multipart.Writer) error { return copyFile(mw, "jarfile", file) })
	var out struct {
		Filename string `json:"filename"`
		Status   string `json:"status"`
	}
	err := c.do(ctx, request{method: "POST", path: "/jars/upload", body: body, contentType: ct}, &out)
	if werr := wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return "", fmt.Errorf("uploading job binary %s: %w", file, err)
	}
	// Flink answers the stored path; its last element is the id.
	id := path.Base(filepath.ToSlash(out.Filename))
	if out.Filename == "" || id == "." || id == "/" {
		return "", fmt.Errorf("uploading job binary %s: the answer names no file", file)
	}
	return id, nil
}

// Binaries lists the uploaded job binaries.
func (c *Client) Binaries(ctx context.Context) ([]Binary, error) {
	var out struct {
		Files []Binary `json:"files"`
	}
	if err := c.do(ctx, request{method: "GET", path: "/jars"}, &out); err != nil {
		return nil, fmt.Errorf("listing job binaries: %w", err)
	}
	return out.Files, nil
}

// unknownBinary is the notFound of a binary's paths.
func unknownBinary(id string) func(*APIError) error {
	return func(e *APIError) error { return fmt.Errorf("unknown job binary %s (%w)", id, e) }
}

// RunBinary starts a job from the uploaded binary id and returns the job's
// id.
func (c *Client) RunBinary(ctx context.Context, id string, opts RunOptions) (string, error) {
	req := struct {
		ProgramArgsList       []string `json:"programArgsList"`
		Parallelism           *int     `json:"parallelism,omitempty"`
		JobID                 string   `json:"jobId,omitempty"`
		AllowNonRestoredState bool     `json:"allowNonRestoredState"`
		SavepointPath         string   `json:"savepointPath,omitempty"`
	}{ProgramArgsList: opts.Args, JobID: opts.JobID, AllowNonRestoredState: opts.AllowNonRestoredState, SavepointPath: opts.SavepointPath}
	if req.ProgramArgsList == nil {
		req.ProgramArgsList = []string{}
	}
	if opts.Parallelism > 0 {
		req.Parallelism = &opts.Parallelism
	}
	b, err := jsonBody(req)
	if err != nil {
		return "", err
	}
	var out struct {
		JobID string `json:"jobid"`
	}
	if err := c.do(ctx, request{method: "POST", path: "/jars/" + url.PathEscape(id) + "/run", body: b,
		contentType: "application/json", notFound: unknownBinary(id)}, &out); err != nil {
		return "", fmt.Errorf("running job binary %s: %w", id, err)
	}
	if out.JobID == "" {
		return "", fmt.Errorf("running job binary %s: the answer names no job id", id)
	}
	return out.JobID, nil
}

// Submission is a job a program submits itself (POST /jobs): its JobGraph
// and the binary every process of the job runs.
type Submission struct {
	JobGraph *jobgraph.JobGraph
	// Binary is the path of the job binary to upload (the submitting
	// program's own executable).
	Binary string
	// Options: Parallelism is not used (the JobGraph has it).
	Options RunOptions
}

// Names of the file parts of a submission; the "request" part names them.
const jobGraphFile = "jobgraph.json"

// SubmitJob submits a job (Flink's client submission: multipart with the
// part "request" first, then the JobGraph as JSON, then the binary) and
// returns its id.
func (c *Client) SubmitJob(ctx context.Context, s Submission) (string, error) {
	if s.JobGraph == nil {
		return "", fmt.Errorf("submitting job: no JobGraph")
	}
	what := fmt.Sprintf("submitting job %q", s.JobGraph.JobName)
	if _, err := os.Stat(s.Binary); err != nil {
		return "", fmt.Errorf("%s: the job binary: %w", what, err)
	}
	graph, err := json.Marshal(s.JobGraph)
	if err != nil {
		return "", fmt.Errorf("%s: encoding the JobGraph: %w", what, err)
	}
	binName := filepath.Base(s.Binary)
	if binName == jobGraphFile {
		binName = "job"
	}
	args := s.Options.Args
	if args == nil {
		args = []string{}
	}
	reqPart := struct {
		JobGraphFileName      string   `json:"jobGraphFileName"`
		JobJarFileNames       []string `json:"jobJarFileNames"`
		JobID                 string   `json:"jobId,omitempty"`
		ProgramArgsList       []string `json:"programArgsList"`
		SavepointPath         string   `json:"savepointPath,omitempty"`
		AllowNonRestoredState bool     `json:"allowNonRestoredState"`
	}{jobGraphFile, []string{binName}, s.Options.JobID, args, s.Options.SavepointPath, s.Options.AllowNonRestoredState}
	body, ct, wait := multipartBody(func(mw *multipart.Writer) error {
		w, err := mw.CreateFormField("request")
		if err != nil {
			return err
		}
		if err := json.NewEncoder(w).Encode(reqPart); err != nil {
			return err
		}
		if w, err = mw.CreateFormFile("file_0", jobGraphFile); err != nil {
			return err
		}
		if _, err := w.Write(graph); err != nil {
			return err
		}
		f, err := os.Open(s.Binary)
		if err != nil {
			return err
		}
		defer f.Close()
		if w, err = mw.CreateFormFile("file_1", binName); err != nil {
			return err
		}
		_, err = io.Copy(w, f)
		return err
	})
	var out struct {
		JobURL string `json:"jobUrl"`
	}
	err = c.do(ctx, request{method: "POST", path: "/jobs", body: body, contentType: ct}, &out)
	if werr := wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	id := path.Base(out.JobURL)
	if out.JobURL == "" || id == "." || id == "/" || id == "jobs" {
		return "", fmt.Errorf("%s: the answer names no job (jobUrl %q)", what, out.JobURL)
	}
	return id, nil
}
