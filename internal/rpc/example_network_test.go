package rpc_test

import (
	"fmt"
	"log/slog"

	"github.com/strom-dev/strom/internal/rpc"
)

// Two processes' transports: the TaskManager's process listens, the
// JobMaster's sends through a gateway, and a role's loop receives.
func ExampleNetwork() {
	quiet := slog.New(slog.DiscardHandler)
	tmProcess, err := rpc.NewNetwork(rpc.NetworkOptions{Logger: quiet}) // 127.0.0.1, a free port
	if err != nil {
		panic(err)
	}
	defer tmProcess.Close()
	jmProcess, err := rpc.NewNetwork(rpc.NetworkOptions{
		Logger: quiet,
		// Losses reach the owner here: a role would hand the event to its
		// loop and treat the TaskManager at u.Address as gone.
		OnUnreachable: func(u rpc.Unreachable) { fmt.Println("lost", u.Address) },
	})
	if err != nil {
		panic(err)
	}
	defer jmProcess.Close()

	ep, err := tmProcess.Listen("taskmanager/tm-1") // address: 127.0.0.1:<port>/taskmanager/tm-1
	if err != nil {
		panic(err)
	}
	if err := jmProcess.TaskManager(ep.Address()).CancelTask(rpc.CancelTask{JobID: "job-1"}); err != nil {
		panic(err)
	}
	<-ep.Ready()
	for _, m := range ep.Receive() {
		fmt.Printf("%T %+v\n", m, m)
	}
	// Output:
	// rpc.CancelTask {JobID:job-1 Execution:v0/0#0}
}
