package strom

import (
	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/keygroup"
)

// keyHasher returns the stable hasher of key type K. Basic kinds hash
// directly; other comparable keys (structs, arrays) hash their codec
// encoding, which is deterministic and the same in every process.
func keyHasher[K comparable]() (keygroup.Hasher[K], error) {
	var encode func([]byte, K) []byte
	if c, err := codec.For[K](); err == nil {
		encode = c.Append
	}
	h, err := keygroup.HasherFor[K](encode)
	if err != nil {
		return nil, errorf("%w", err)
	}
	return h, nil
}
