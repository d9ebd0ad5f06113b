// Package wire writes and reads the length-prefixed binary fields of
// hookbridge's stored records: the queue's own records and the events in
// them.
package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendString appends s, a string or a byte slice, with its length as a
// uvarint before it.
func AppendString[T ~string | ~[]byte](b []byte, s T) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Reader reads varints and length-prefixed fields from a record; the first
// failure sticks, and every read after it returns a zero value.
type Reader struct {
	b       []byte
	err     error
	corrupt error // wrapped by every failure
}

// NewReader reads b; its failures wrap corrupt.
func NewReader(b []byte, corrupt error) *Reader {
	return &Reader{b: b, corrupt: corrupt}
}

func (r *Reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", r.corrupt, what)
	}
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Count reads a non-negative int that fits in 32 bits.
func (r *Reader) Count() int {
	v := r.Uvarint()
	if v > math.MaxInt32 {
		r.fail("count")
		return 0
	}
	return int(v)
}

// Field reads a length-prefixed field, sharing the record's memory.
func (r *Reader) Field() []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Bytes reads a length-prefixed field into a new slice; nil when empty.
func (r *Reader) Bytes() []byte {
	v := r.Field()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// String reads a length-prefixed field as a string.
func (r *Reader) String() string { return string(r.Field()) }

// Left is how many bytes are left to read.
func (r *Reader) Left() int { return len(r.b) }

// Finish returns the first failure, or one for bytes left unread.
func (r *Reader) Finish() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}
