package helloclient

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookbridge/hookbridge/sources"
	"github.com/hookbridge/hookbridge/sources/sourcetest"
)

// foldedCopy is the plain way to match keys loosely: the whole object
// copied under lower-cased keys without underscores.
func foldedCopy(obj map[string]any) map[string][]string {
	keys := map[string][]string{}
	for k := range obj {
		folded := strings.ToLower(strings.ReplaceAll(k, "_", ""))
		keys[folded] = append(keys[folded], k)
	}
	return keys
}

// checkFields asserts that read found, for every field, the value of the
// least of the object's keys that fold to the field's key, and nothing when
// there is none.
func checkFields(t *testing.T, obj map[string]any) {
	t.Helper()
	var f fields
	f.read(obj)
	byFolded := foldedCopy(obj)
	for i, name := range fieldKeys {
		keys := byFolded[name]
		if len(keys) == 0 {
			if f.found[i] || f.value[i] != nil {
				t.Fatalf("%s: found %#v in %#v", name, f.value[i], obj)
			}
			continue
		}
		least := keys[0]
		for _, k := range keys {
			least = min(least, k)
		}
		if !f.found[i] || f.key[i] != least || !reflect.DeepEqual(f.value[i], obj[least]) {
			t.Fatalf("%s: got key %q value %#v (found %v); want key %q value %#v", name, f.key[i], f.value[i], f.found[i], least, obj[least])
		}
	}
}

func TestFieldsFoldKeys(t *testing.T) {
	for _, body := range []string{
		`{"SessionID":"a","session_id":"b","sessionId":"c","SESSION__ID":"d"}`,
		`{"Serial_Number":1.5,"CREATETIME":"x","Type":{},"type":"lead","Event":null}`,
		`{"Appointment_Time":null,"ChatLogs":[],"date":"d","\u212Aey":1,"İtime":2,"ᵀime":3}`,
		`{"` + strings.Repeat("_", 40) + `time":1,"` + strings.Repeat("x", 40) + `":2,"tim\u00e9":3}`,
	} {
		var obj map[string]any
		if err := sources.DecodeObject([]byte(body), &obj); err != nil {
			t.Fatal(err)
		}
		checkFields(t, obj)
	}
}

// TestKeysThatFoldAlikeChooseTheSameEveryTime: with Type and type both
// present, every delivery of the body must become the same event, whatever
// order the map is walked in.
func TestKeysThatFoldAlikeChooseTheSameEveryTime(t *testing.T) {
	src := testSource(t, 0)
	body := []byte(`{"Type":"chat","type":"lead","TYPE":"survey","SessionID":"a","session_id":"b","sessionid":"c"}`)
	for range 50 {
		evs, err := src.Convert(&sources.Request{Body: body, ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if evs[0].Type() != "com.helloclient.survey" || evs[0].Subject() != "sessions/a" {
			t.Fatalf("type %q subject %q; want the least keys, TYPE and SessionID", evs[0].Type(), evs[0].Subject())
		}
	}
}

// FuzzFields: on any object, read agrees with copying the object under
// folded keys, and picking the fields out of the body as Convert does
// agrees with read.
func FuzzFields(f *testing.F) {
	for _, req := range sourcetest.Seeds(f, "testdata") {
		f.Add(req.Body)
	}
	f.Add([]byte(`{"Session_ID":"a","sessionid":"b","\u212Aey":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var obj map[string]any
		if sources.DecodeObject(body, &obj) != nil {
			return
		}
		checkFields(t, obj)
		// Convert reads the fields straight from the body: it must find
		// what read finds in the decoded object.
		var fromMap, streamed fields
		fromMap.read(obj)
		if err := sources.DecodeFields(body, isField, streamed.set); err != nil {
			t.Fatalf("%q: DecodeFields: %v", body, err)
		}
		if !reflect.DeepEqual(streamed, fromMap) {
			t.Fatalf("%q: fields from the body %#v, from the decoded object %#v", body, streamed, fromMap)
		}
	})
}
