package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
)

// The metadata file of a completed checkpoint or savepoint. Recovery trusts
// it completely — it names every state file — so it must never be taken for
// valid when it is not: a file cut short by a crash, a flipped bit on disk
// or a file written by a newer Strom all fail to decode, each with its own
// sentinel error, instead of restoring wrong state.
//
// Layout (integers big-endian):
//
//	offset  size  field
//	0       8     magic "STROMCKP"
//	8       2     format version (MetadataVersion)
//	10      4     payload length in bytes
//	14      4     CRC-32C (Castagnoli) of the payload
//	18      n     payload: Metadata as JSON
//
// The version comes before the length and checksum so that a future format
// may change everything after it; a reader refuses versions it does not
// know rather than guess.

// MetadataVersion is the format version this code writes and reads.
const MetadataVersion = 1

const (
	metadataMagic     = "STROMCKP"
	metadataHeaderLen = len(metadataMagic) + 2 + 4 + 4
)

var (
	// ErrCorruptMetadata is wrapped by decode errors of a metadata file
	// that is truncated, fails its checksum or does not parse.
	ErrCorruptMetadata = errors.New("corrupt checkpoint metadata")
	// ErrUnsupportedVersion is wrapped by decode errors of a metadata file
	// in a format version this code does not read.
	ErrUnsupportedVersion = errors.New("unsupported checkpoint metadata version")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeMetadata returns the bytes of md's metadata file.
func EncodeMetadata(md *Metadata) ([]byte, error) {
	payload, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("encode metadata of checkpoint %d of job %s: %w", md.ID, md.JobID, err)
	}
	out := make([]byte, metadataHeaderLen, metadataHeaderLen+len(payload))
	copy(out, metadataMagic)
	binary.BigEndian.PutUint16(out[8:], MetadataVersion)
	binary.BigEndian.PutUint32(out[10:], uint32(len(payload)))
	binary.BigEndian.PutUint32(out[14:], crc32.Checksum(payload, castagnoli))
	return append(out, payload...), nil
}

// DecodeMetadata parses a metadata file; name (its key in storage) goes
// into the errors, which wrap ErrCorruptMetadata or ErrUnsupportedVersion.
func DecodeMetadata(name string, data []byte) (*Metadata, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrCorruptMetadata, name, fmt.Sprintf(format, args...))
	}
	if len(data) < metadataHeaderLen {
		return nil, corrupt("%d bytes, shorter than the %d-byte header", len(data), metadataHeaderLen)
	}
	if string(data[:8]) != metadataMagic {
		return nil, corrupt("bad magic %q", data[:8])
	}
	if v := binary.BigEndian.Uint16(data[8:]); v != MetadataVersion {
		return nil, fmt.Errorf("%w %s: version %d, this build reads version %d", ErrUnsupportedVersion, name, v, MetadataVersion)
	}
	n := binary.BigEndian.Uint32(data[10:])
	payload := data[metadataHeaderLen:]
	if uint64(len(payload)) != uint64(n) {
		return nil, corrupt("payload is %d bytes, header says %d (truncated or padded)", len(payload), n)
	}
	if got, want := crc32.Checksum(payload, castagnoli), binary.BigEndian.Uint32(data[14:]); got != want {
		return nil, corrupt("crc32c %08x, header says %08x", got, want)
	}
	md := new(Metadata)
	if err := json.Unmarshal(payload, md); err != nil {
		// Only reachable if the writer itself was wrong: the checksum
		// matched.
		return nil, corrupt("payload: %v", err)
	}
	if md.Kind != KindCheckpoint && md.Kind != KindSavepoint {
		return nil, corrupt("unknown kind %d", md.Kind)
	}
	return md, nil
}
