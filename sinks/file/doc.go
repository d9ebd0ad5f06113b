// Package file writes CloudEvents to files as JSON Lines: one event per line
// in the structured JSON format, the same bytes a CloudEvents consumer reads
// with any SDK. The path may be a template ({{ .Extensions.bridgesource }},
// {{ .Time.Format "2006-01-02" }}), files rotate when they reach max_size,
// and each delivered batch is fsync'd before it is acknowledged unless
// `sync: none` leaves flushing to the operating system.
package file
