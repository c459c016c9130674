package rest

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// postJob is POST /jobs, Flink's job submission: multipart/form-data with
// a part "request" (JobSubmitRequestBody, first) and file parts named by
// it: the JobGraph (JSON, bounded by MaxBodyBytes) and exactly one job
// binary (jobJarFileNames; streamed to the store). Artifacts are refused.
// The answer is 202 {"jobUrl": "/jobs/<id>"}.
func (s *Server) postJob(r *http.Request) (int, any, error) {
	mr, err := s.multipartOf(r, `a part "request" and the files it names`)
	if err != nil {
		return 0, nil, err
	}
	var (
		req    *jobSubmitBody
		jg     *jobgraph.JobGraph
		binary string
	)
	// A binary stored for a submission that then fails is deleted again,
	// even when the client has gone away.
	cleanup := func() {
		if binary != "" {
			_ = s.cfg.Cluster.DeleteBinary(context.WithoutCancel(r.Context()), binary)
		}
	}
	fail := func(err error) (int, any, error) {
		cleanup()
		return 0, nil, err
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(bodyError(err))
		}
		if req == nil {
			if part.FormName() != "request" {
				return fail(errorf(http.StatusBadRequest, "The part \"request\" must come first; got %q.", part.FormName()))
			}
			req = &jobSubmitBody{}
			if err := s.decodePart(part, req); err != nil {
				return fail(err)
			}
			if err := checkSubmit(req); err != nil {
				return fail(err)
			}
			continue
		}
		name := part.FileName()
		switch {
		case name == req.JobGraphFileName && jg == nil:
			jg = &jobgraph.JobGraph{}
			if err := s.decodePart(part, jg); err != nil {
				return fail(err)
			}
		case name == req.JobJarFileNames[0] && binary == "":
			b, err := s.storeBinary(r, part)
			if err != nil {
				return fail(err)
			}
			binary = b.ID
		default:
			return fail(errorf(http.StatusBadRequest, "Unexpected part %q (file %q): the request names the JobGraph %q and the binary %q, once each.",
				part.FormName(), name, req.JobGraphFileName, req.JobJarFileNames[0]))
		}
	}
	switch {
	case req == nil:
		return fail(errorf(http.StatusBadRequest, "The submission has no part \"request\"."))
	case jg == nil:
		return fail(errorf(http.StatusBadRequest, "The submission has no JobGraph file %q.", req.JobGraphFileName))
	case binary == "":
		return fail(errorf(http.StatusBadRequest, "The submission has no binary file %q.", req.JobJarFileNames[0]))
	}
	sub := Submission{BinaryID: binary, JobGraph: jg, Options: RunOptions{Args: req.ProgramArgsList, JobID: req.JobID,
		SavepointPath: req.SavepointPath, AllowNonRestoredState: req.AllowNonRestoredState, RestoreMode: req.RestoreMode}}
	jobID, err := s.cfg.Cluster.SubmitJob(r.Context(), sub)
	if err != nil {
		return fail(fmt.Errorf("submitting job %q: %w", jg.JobName, err))
	}
	return http.StatusAccepted, jobSubmitResponse{JobURL: "/jobs/" + jobID}, nil
}

// checkSubmit checks a submission's request part.
func checkSubmit(req *jobSubmitBody) error {
	switch {
	case req.JobGraphFileName == "":
		return errorf(http.StatusBadRequest, "Request did not match expected format: jobGraphFileName is missing.")
	case len(req.JobJarFileNames) != 1 || req.JobJarFileNames[0] == "" || req.JobJarFileNames[0] == req.JobGraphFileName:
		return errorf(http.StatusBadRequest, "Request did not match expected format: jobJarFileNames must name exactly one binary, other than the JobGraph.")
	case len(req.JobArtifactFileNames) > 0:
		return errorf(http.StatusBadRequest, "Request did not match expected format: artifacts (jobArtifactFileNames) are not supported; build them into the binary.")
	}
	return checkRunOptions(RunOptions{JobID: req.JobID, RestoreMode: req.RestoreMode})
}

// decodePart reads a JSON part (at most MaxBodyBytes) into dst, strictly.
func (s *Server) decodePart(part *multipart.Part, dst any) error {
	defer part.Close()
	data, err := io.ReadAll(io.LimitReader(part, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return bodyError(err)
	}
	if int64(len(data)) > s.cfg.MaxBodyBytes {
		return errorf(http.StatusRequestEntityTooLarge, "Part %q exceeds the limit of %d bytes.", part.FormName(), s.cfg.MaxBodyBytes)
	}
	return decodeJSON(data, dst, fmt.Sprintf("Part %q", part.FormName()))
}
