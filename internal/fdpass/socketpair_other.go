//go:build !linux

package fdpass

import "syscall"

// socketpair makes a unix stream pair and marks both ends close-on-exec
// under ForkLock, as the standard library does where the flag cannot be
// given at creation, so no process forked meanwhile inherits either end.
// The runtime targets Linux; this keeps the package building elsewhere
// (developers' machines) with the same behaviour.
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return fds, err
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	return fds, nil
}
