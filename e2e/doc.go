// Package e2e runs the bridge binary itself and drives it over HTTP the way
// providers do, with signatures computed here independently of the source
// packages, then checks what arrives at the sinks.
package e2e
