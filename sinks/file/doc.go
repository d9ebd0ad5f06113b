// Package file writes CloudEvents to files as JSON Lines: one event per line
// in the structured JSON format, the same bytes a CloudEvents consumer reads
// with any SDK. The path may be a template ({{ .Extensions.bridgesource }},
// {{ .Time.Format "2006-01-02" }}), files rotate when they reach max_size,
// and each delivered batch is fsync'd before it is acknowledged unless
// `sync: none` leaves flushing to the operating system. A file found ending
// in part of a line (a write cut short by a kill or a full disk; its batch
// failed and is written again) is ended with a newline first, so each event
// starts a line of its own.
package file
