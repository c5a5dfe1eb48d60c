package redisstore

import (
	"reflect"
	"testing"
	"time"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/storetest"
)

func TestMetaRoundTrip(t *testing.T) {
	full := storetest.NewMessage("box@mayfly.test", "Grüße \x00\n\xff")
	empty := &storage.Message{}
	old := storetest.NewMessage("box@mayfly.test", "old")
	old.Date = time.Date(1, 2, 3, 4, 5, 6, 0, time.UTC) // a Date header may claim anything
	old.Size = -1
	for _, m := range []*storage.Message{full, empty, old} {
		var got storage.Message
		if err := decodeMeta(string(encodeMeta(m)), &got); err != nil {
			t.Fatalf("decodeMeta(encodeMeta(%q)): %v", m.Subject, err)
		}
		want := *m
		want.Raw, want.Inbox = nil, "" // the inbox is in the key
		for _, p := range []*time.Time{&want.Date, &want.Received, &want.Expires, &got.Date, &got.Received, &got.Expires} {
			if !p.IsZero() {
				*p = p.Truncate(time.Microsecond).UTC()
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decodeMeta(encodeMeta(m)) = %+v, want %+v", got, want)
		}
	}
	// A record written before ReplyTo and Sent existed ends at Auth.DMARC.
	before := storetest.NewMessage("box@mayfly.test", "before")
	before.ReplyTo = nil
	enc := encodeMeta(before)
	var older storage.Message
	if err := decodeMeta(string(enc[:len(enc)-3]), &older); err != nil || older.Subject != "before" || older.ReplyTo != nil || older.Sent {
		t.Errorf("decodeMeta of a record without ReplyTo and Sent = %+v, %v", older, err)
	}
	// One written before FromAligned existed ends at Sent.
	aligned := storetest.NewMessage("box@mayfly.test", "aligned")
	aligned.Auth.FromAligned, aligned.Sent = true, true
	enc = encodeMeta(aligned)
	if err := decodeMeta(string(enc), &older); err != nil || !older.Auth.FromAligned {
		t.Errorf("FromAligned did not round-trip: %+v, %v", older, err)
	}
	older = storage.Message{}
	if err := decodeMeta(string(enc[:len(enc)-1]), &older); err != nil || older.Auth.FromAligned || !older.Sent {
		t.Errorf("decodeMeta of a record without FromAligned = %+v, %v", older, err)
	}
	sent := storetest.NewMessage("box@mayfly.test", "sent")
	sent.Sent = true
	if err := decodeMeta(string(encodeMeta(sent)), &older); err != nil || !older.Sent || len(older.ReplyTo) != 1 {
		t.Errorf("Sent and ReplyTo did not round-trip: %+v, %v", older, err)
	}
	// New fields go at the end; what a decoder does not know it skips.
	var m storage.Message
	if err := decodeMeta(string(append(encodeMeta(full), 9, 9, 9)), &m); err != nil || m.Subject != full.Subject {
		t.Errorf("decodeMeta with fields added = %q, %v", m.Subject, err)
	}
	for _, bad := range []string{"", "\x02", "\x01", string(encodeMeta(full)[:40]), "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"} {
		if err := decodeMeta(bad, &m); err == nil {
			t.Errorf("decodeMeta(%q) succeeded, want an error", bad)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(string(encodeMeta(storetest.NewMessage("box@mayfly.test", "seed"))))
	f.Add("\x01\x05abc")
	f.Fuzz(func(t *testing.T, data string) {
		var m storage.Message
		if decodeMeta(data, &m) != nil {
			return
		}
		var again storage.Message
		if err := decodeMeta(string(encodeMeta(&m)), &again); err != nil {
			t.Fatalf("decodeMeta of a re-encoding: %v", err)
		}
	})
}

func FuzzEvent(f *testing.F) {
	f.Add("a\nbox@mayfly.test\nid\n7\n0\n" + string(encodeMeta(storetest.NewMessage("box@mayfly.test", "seed"))))
	f.Add("f\nbox@mayfly.test\nid\n7\n3\n")
	f.Fuzz(func(t *testing.T, payload string) {
		if typ, inbox, rest, err := eventHeader(payload); err == nil {
			parseEvent(typ, inbox, rest) // must not panic
		}
	})
}

func BenchmarkDecodeMeta(b *testing.B) {
	data := string(encodeMeta(storetest.NewMessage("box@mayfly.test", "bench")))
	b.ReportAllocs()
	for b.Loop() {
		var m storage.Message
		if err := decodeMeta(data, &m); err != nil {
			b.Fatal(err)
		}
	}
}
