package helloclient

import (
	"testing"

	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

func BenchmarkConvert(b *testing.B) {
	src := testSource(b, 0)
	for _, vector := range []string{"lead", "appointment", "chatlog"} {
		req := sourcetest.Load(b, "testdata/"+vector)
		b.Run(vector, func(b *testing.B) {
			b.SetBytes(int64(len(req.Body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := src.Convert(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
