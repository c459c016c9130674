package rpc

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/strom-dev/strom/internal/rpc/rpcpb"
	"github.com/strom-dev/strom/internal/runtime"
)

// Every message of the table (which TestEveryMessageTypeIsInTheTable keeps
// complete) survives the protobuf form unchanged, and sets every field of
// that form: a field missing from the conversion, or from the .proto,
// fails here.
func TestMessagesRoundTripThroughProtobuf(t *testing.T) {
	cases := map[string]bool{}
	for _, m := range messages {
		typ := reflect.TypeOf(m)
		t.Run(typ.Name(), func(t *testing.T) {
			requireNonZero(t, reflect.ValueOf(m), typ.Name())
			e, err := MessageToProto(m)
			require.NoError(t, err)
			oneof := e.ProtoReflect().WhichOneof(e.ProtoReflect().Descriptor().Oneofs().ByName("message"))
			require.NotNil(t, oneof)
			cases[string(oneof.Name())] = true
			requireProtoSet(t, e.ProtoReflect().Get(oneof).Message(), typ.Name())

			got := throughProtobuf(t, m)
			require.True(t, reflect.DeepEqual(m, got), "got %+v, want %+v", got, m)
		})
	}
	// Each message type has its own case of the envelope.
	require.Len(t, cases, len(messages))
	require.Equal(t, len(messages), (&rpcpb.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("message").Fields().Len(),
		"the envelope has a case no message type uses")
}

// throughProtobuf is m after a trip through its encoded protobuf form.
func throughProtobuf(t *testing.T, m Message) Message {
	t.Helper()
	e, err := MessageToProto(m)
	require.NoError(t, err)
	data, err := proto.Marshal(e)
	require.NoError(t, err)
	var back rpcpb.Envelope
	require.NoError(t, proto.Unmarshal(data, &back))
	got, err := MessageFromProto(&back)
	require.NoError(t, err)
	return got
}

// requireProtoSet fails for a field of m (recursively) left at its default:
// the conversion forgot it, since the Go value had every field set.
func requireProtoSet(t *testing.T, m protoreflect.Message, path string) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		p := path + "." + string(f.Name())
		if !m.Has(f) {
			t.Errorf("%s is not set in the protobuf form", p)
			continue
		}
		switch {
		case f.IsList() && f.Kind() == protoreflect.MessageKind:
			l := m.Get(f).List()
			for j := range l.Len() {
				requireProtoSet(t, l.Get(j).Message(), fmt.Sprintf("%s[%d]", p, j))
			}
		case f.Kind() == protoreflect.MessageKind:
			requireProtoSet(t, m.Get(f).Message(), p)
		}
	}
}

// A failure crosses the network as plain data: its cause stays behind and
// Err rebuilds a *runtime.TaskError with the same text.
func TestFailureCrossesTheWireWithoutItsCause(t *testing.T) {
	cause := errors.New("user says no")
	te := &runtime.TaskError{Job: "j", Operator: "Map", Task: runtime.TaskInfo{JobName: "j", JobID: "job-1", VertexName: "Map", Subtask: 1, Parallelism: 2, Attempt: 3},
		Err: cause, Stack: "goroutine 1"}
	m := throughProtobuf(t, TaskStateUpdate{JobID: "job-1", Execution: exec, Failure: FailureOf(te)})
	f := m.(TaskStateUpdate).Failure
	require.Nil(t, f.Cause)
	require.EqualError(t, f.Err(), te.Error())
	require.NotErrorIs(t, f.Err(), cause)
	var gotTE *runtime.TaskError
	require.ErrorAs(t, f.Err(), &gotTE)
	require.Equal(t, te.Task, gotTE.Task)
}

type notAMessage struct{ Message }

// A value the conversion does not know, and an envelope without a message
// (a newer sender's type), are errors, not zero messages.
func TestConversionRejectsUnknownMessages(t *testing.T) {
	_, err := MessageToProto(notAMessage{})
	require.ErrorContains(t, err, "no protobuf form")
	_, err = MessageFromProto(&rpcpb.Envelope{})
	require.ErrorContains(t, err, "no known message")
}
