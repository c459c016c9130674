package fdpass

import "syscall"

// socketpair makes a unix stream pair, close-on-exec from birth, so no
// process forked meanwhile inherits either end.
func socketpair() ([2]int, error) {
	return syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
}
