package rest

import (
	"fmt"
	"io"
	"net/http"
)

// A Server serves Flink's REST API over a Cluster (here the tests' fake;
// in a JobManager, the Dispatcher) on a loopback port.
func ExampleServer() {
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Cluster: newFakeCluster(t0), Logger: quietLogger})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(s.URL() + "/jobs")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.StatusCode, " ", string(body))
	// Output:
	// 200 {"jobs":[{"id":"0123456789abcdef0123456789abcdef","status":"RUNNING"},{"id":"fedcba9876543210fedcba9876543210","status":"FINISHED"}]}
}
