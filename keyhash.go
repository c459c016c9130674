package strom

import (
	"fmt"

	"github.com/strom-dev/strom/internal/keygroup"
)

// keyHasher returns the stable hasher of key type K. Basic kinds hash
// directly; other comparable keys hash their canonical encoding.
func keyHasher[K comparable]() (keygroup.Hasher[K], error) {
	h, err := keygroup.HasherFor[K](func(dst []byte, k K) []byte { return fmt.Appendf(dst, "%#v", k) })
	if err != nil {
		return nil, errorf("%w", err)
	}
	return h, nil
}
