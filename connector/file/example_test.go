package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/file"
)

// Write lines to a file, then read them back.
func Example() {
	dir, _ := os.MkdirTemp("", "strom-file")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "squares.txt")

	env := strom.NewEnvironment()
	squares := strom.Map(strom.FromElements(env, 1, 2, 3), func(v int) int { return v * v })
	file.WriteLines(squares, path, func(v int) string { return "square " + strconv.Itoa(v) })
	if _, err := env.Execute(context.Background(), "write"); err != nil {
		fmt.Println(err)
		return
	}

	env = strom.NewEnvironment()
	lines := strom.Collect(file.FromFile(env, path))
	if _, err := env.Execute(context.Background(), "read"); err != nil {
		fmt.Println(err)
		return
	}
	got := lines.Values()
	slices.Sort(got)
	fmt.Println(strings.Join(got, "; "))
	// Output: square 1; square 4; square 9
}

// A LineSource decodes records from lines; lines it reports as holding no
// record (here: blank lines and comments) are skipped, and a decoding error
// fails the job naming the file and the line.
func ExampleLineSource() {
	dir, _ := os.MkdirTemp("", "strom-file")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "numbers.txt")
	_ = os.WriteFile(path, []byte("# numbers\n1\n\n2\n3\n"), 0o644)

	src := file.LineSource[int]{Path: path, Decode: func(line []byte) (int, bool, error) {
		if len(line) == 0 || line[0] == '#' {
			return 0, false, nil
		}
		n, err := strconv.Atoi(string(line))
		return n, err == nil, err
	}}
	env := strom.NewEnvironment()
	nums := strom.Collect(strom.FromSource[int](env, src, "Numbers"))
	if _, err := env.Execute(context.Background(), "numbers"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(nums.Values())
	// Output: [1 2 3]
}
