package strom

import "fmt"

func errorf(format string, args ...any) error { return fmt.Errorf("strom: "+format, args...) }
