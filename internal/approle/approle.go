// Package approle holds the application-mode role a job binary was
// started in (package strom, application.go): the role word
// ("jobmanager" or "taskmanager") and its flags, which package strom's
// initializer takes out of os.Args before main runs so that the
// program's own flag parsing sees only the program's arguments.
//
// It is a package of its own so that a program of this module whose own
// commands are named "jobmanager" and "taskmanager" — the strom CLI,
// which imports package strom for its demo and benchmark — can undo that
// (Restore) and parse its arguments itself.
package approle

import (
	"os"
	"slices"
	"sync"
)

// The role words.
const (
	JobManager  = "jobmanager"
	TaskManager = "taskmanager"
)

var (
	mu       sync.Mutex
	role     string
	args     []string
	original []string
)

// Take takes the role word and its arguments out of os.Args (unless
// suppressed: a job worker or plan-mode process never takes a role) and
// keeps them for Role.
func Take(suppressed bool) {
	mu.Lock()
	defer mu.Unlock()
	r, a, rest := Split(os.Args, suppressed)
	if r == "" {
		return
	}
	role, args, original = r, a, os.Args
	os.Args = rest
}

// Role is the role taken ("" for none) and its arguments.
func Role() (string, []string) {
	mu.Lock()
	defer mu.Unlock()
	return role, args
}

// Restore puts os.Args back as the process got them and forgets the role.
func Restore() {
	mu.Lock()
	defer mu.Unlock()
	if role != "" {
		os.Args = original
		role, args, original = "", nil, nil
	}
}

// Split splits a process's arguments: the role word (args[1]), its
// arguments up to "--", and the program's arguments — args[0] and what
// follows "--". Without a role word (or suppressed) args are the
// program's.
func Split(args []string, suppressed bool) (role string, roleArgs, rest []string) {
	if suppressed || len(args) < 2 || (args[1] != JobManager && args[1] != TaskManager) {
		return "", nil, args
	}
	role, roleArgs = args[1], args[2:]
	var prog []string
	if i := slices.Index(roleArgs, "--"); i >= 0 {
		roleArgs, prog = roleArgs[:i], roleArgs[i+1:]
	}
	return role, slices.Clip(roleArgs), append([]string{args[0]}, prog...)
}
