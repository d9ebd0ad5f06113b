// Package all registers every sink kind; the binary imports it for its side effects.
package all

import (
	_ "github.com/hookbridge/hookbridge/sinks/file"
	_ "github.com/hookbridge/hookbridge/sinks/http"
	_ "github.com/hookbridge/hookbridge/sinks/kafka"
	_ "github.com/hookbridge/hookbridge/sinks/slack"
)
