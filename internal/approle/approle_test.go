package approle

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The role word and its flags leave os.Args; the program keeps what
// follows "--". Workers and plan mode never take a role.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		suppressed bool
		role       string
		roleArgs   []string
		rest       []string
	}{
		{args: []string{"job"}, rest: []string{"job"}},
		{args: []string{"job", "-n", "3"}, rest: []string{"job", "-n", "3"}},
		{args: []string{"job", "-n", "jobmanager"}, rest: []string{"job", "-n", "jobmanager"}},
		{args: []string{"job", "jobmanager"}, role: "jobmanager", roleArgs: []string{}, rest: []string{"job"}},
		{args: []string{"job", "jobmanager", "--rest-address", ":0", "--", "-n", "3"}, role: "jobmanager",
			roleArgs: []string{"--rest-address", ":0"}, rest: []string{"job", "-n", "3"}},
		{args: []string{"job", "taskmanager", "--jobmanager", "h:1", "--", "--", "x"}, role: "taskmanager",
			roleArgs: []string{"--jobmanager", "h:1"}, rest: []string{"job", "--", "x"}},
		{args: []string{"job", "taskmanager", "--jobmanager", "h:1"}, suppressed: true,
			rest: []string{"job", "taskmanager", "--jobmanager", "h:1"}},
	} {
		role, roleArgs, rest := Split(tc.args, tc.suppressed)
		require.Equal(t, tc.role, role, "%q", tc.args)
		if tc.roleArgs != nil || roleArgs != nil {
			require.Equal(t, tc.roleArgs, roleArgs, "%q", tc.args)
		}
		require.Equal(t, tc.rest, rest, "%q", tc.args)
	}
}
