// Package all registers every source type; the binary imports it for its side effects.
package all

import (
	_ "github.com/hookbridge/hookbridge/sources/crisp"
	_ "github.com/hookbridge/hookbridge/sources/github"
	_ "github.com/hookbridge/hookbridge/sources/helloclient"
	_ "github.com/hookbridge/hookbridge/sources/helpcrunch"
	_ "github.com/hookbridge/hookbridge/sources/hmac"
	_ "github.com/hookbridge/hookbridge/sources/meta"
	_ "github.com/hookbridge/hookbridge/sources/slack"
	_ "github.com/hookbridge/hookbridge/sources/socialboards"
	_ "github.com/hookbridge/hookbridge/sources/standardwebhooks"
	_ "github.com/hookbridge/hookbridge/sources/stripe"
	_ "github.com/hookbridge/hookbridge/sources/userecho"
)
