// Package file is the file connector: a source that reads the lines of a
// file or of a directory of files (FromFile, FileSource, or LineSource for
// records decoded from lines), and a sink that writes one line per record
// (WriteLines, WriteJSONLines) to a file or to one part file per subtask,
// or exactly once with checkpoints (WriteLinesExactlyOnce,
// WriteJSONLinesExactlyOnce: part files become visible when the checkpoint
// after their records is complete).
//
// A file is one split; its reader's position is the byte offset of the
// next line, so a reader resumes where it stopped. The connector is built
// on the public API of package strom only (strom.Source, strom.SinkTo, strom.SinkToCommitting), as
// any connector written outside this module would be.
package file
