package rpcpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// protocVersion is the one line of the generated code that depends on the
// machine rather than on the .proto and go.mod: which protoc ran.
var protocVersion = regexp.MustCompile(`(?m)^//\s+protoc\s+v.*$`)

// The committed code is what scripts/gen-proto.sh makes of the .proto with
// the plugins go.mod pins: a .proto edited without regenerating fails here.
// Without protoc the test fails (it cannot tell): install protobuf-compiler.
func TestGeneratedCodeIsUpToDate(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not installed, so the generated code cannot be checked against proto/: " +
			"install protobuf-compiler (apt-get install -y protobuf-compiler)")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	require.NoError(t, err)
	// The test reads the generator's inputs itself, so that `go test`'s
	// cache, which knows only the files the test process opens, reruns it
	// when one of them changes.
	for _, in := range []string{"proto/strom/rpc/v1/rpc.proto", "scripts/gen-proto.sh", "go.mod"} {
		_, err := os.ReadFile(filepath.Join(root, in))
		require.NoError(t, err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "gen-proto.sh"), out)
	cmd.Dir = root
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "scripts/gen-proto.sh: %s", msg)

	for _, name := range []string{"rpc.pb.go", filepath.Join("rpcpbconnect", "rpc.connect.go")} {
		fresh, err := os.ReadFile(filepath.Join(out, "rpcpb", name))
		require.NoError(t, err)
		committed, err := os.ReadFile(name)
		require.NoError(t, err)
		fresh, committed = protocVersion.ReplaceAll(fresh, nil), protocVersion.ReplaceAll(committed, nil)
		require.True(t, bytes.Equal(fresh, committed),
			"internal/rpc/rpcpb/%s is not what proto/ generates: run scripts/gen-proto.sh and commit the result", name)
	}
	// No generated file that the .proto no longer makes is left behind.
	generated, err := filepath.Glob(filepath.Join(out, "rpcpb", "*.pb.go"))
	require.NoError(t, err)
	committedFiles, err := filepath.Glob("*.pb.go")
	require.NoError(t, err)
	require.Len(t, committedFiles, len(generated), "a committed .pb.go file has no .proto any more")
}
