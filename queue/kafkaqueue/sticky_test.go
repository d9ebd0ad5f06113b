package kafkaqueue

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// checkBalanced fails unless every partition went to exactly one member
// and the members' counts differ by at most one.
func checkBalanced(t *testing.T, members []string, partitions []int, got map[string][]int) {
	t.Helper()
	seen := map[int]string{}
	lo, hi := len(partitions), 0
	for _, m := range members {
		lo, hi = min(lo, len(got[m])), max(hi, len(got[m]))
		for _, p := range got[m] {
			if other, ok := seen[p]; ok {
				t.Fatalf("partition %d given to %s and %s: %v", p, other, m, got)
			}
			seen[p] = m
		}
	}
	for m := range got {
		if !slices.Contains(members, m) {
			t.Fatalf("partitions given to %q, no member: %v", m, got)
		}
	}
	if len(seen) != len(partitions) {
		t.Fatalf("%d of %d partitions assigned: %v", len(seen), len(partitions), got)
	}
	if len(members) > 0 && hi-lo > 1 {
		t.Fatalf("unbalanced, %d to %d partitions a member: %v", lo, hi, got)
	}
}

func TestStickyKeepsHeldPartitionsWithTheirHolders(t *testing.T) {
	parts := []int{0, 1, 2, 3, 4, 5}
	// Three replicas held two partitions each; c died. a and b keep theirs
	// and share c's.
	got := assignSticky([]string{"a", "b"}, parts, map[string]map[int]int{
		"a": {0: 10, 1: 3},
		"b": {2: 7, 3: 1},
	})
	checkBalanced(t, []string{"a", "b"}, parts, got)
	for m, want := range map[string][]int{"a": {0, 1}, "b": {2, 3}} {
		for _, p := range want {
			if !slices.Contains(got[m], p) {
				t.Errorf("%s lost partition %d it held records of: %v", m, p, got)
			}
		}
	}

	// c is back with nothing held: it gets a fair share, taken from the
	// partitions with the fewest records held.
	got = assignSticky([]string{"a", "b", "c"}, parts, map[string]map[int]int{
		"a": {0: 10, 1: 3, 4: 1},
		"b": {2: 7, 3: 2, 5: 9},
	})
	checkBalanced(t, []string{"a", "b", "c"}, parts, got)
	if want := []int{0, 1}; !slices.Equal(got["a"], want) {
		t.Errorf("a got %v, want %v (its two busiest)", got["a"], want)
	}
	if want := []int{2, 5}; !slices.Equal(got["b"], want) {
		t.Errorf("b got %v, want %v (its two busiest)", got["b"], want)
	}

	// Two members claim one partition (a rebalance while both held some):
	// the one holding more keeps it.
	got = assignSticky([]string{"a", "b"}, []int{0, 1}, map[string]map[int]int{"a": {0: 2}, "b": {0: 5}})
	checkBalanced(t, []string{"a", "b"}, []int{0, 1}, got)
	if !slices.Equal(got["b"], []int{0}) {
		t.Errorf("b held more of partition 0 and got %v", got["b"])
	}
}

func TestStickyMoreMembersThanPartitions(t *testing.T) {
	members := []string{"a", "b", "c", "d"}
	got := assignSticky(members, []int{0, 1}, map[string]map[int]int{"a": {0: 1, 1: 1}})
	checkBalanced(t, members, []int{0, 1}, got)
	if len(got["a"]) != 1 {
		t.Errorf("a got %v, want one partition", got["a"])
	}
}

// TestStickyBalancerThroughKafkaGo: the balancer's member data round-trips,
// a member whose data is unreadable claims nothing, and a topic only some
// members read goes to those.
func TestStickyBalancerThroughKafkaGo(t *testing.T) {
	held := map[int]int{3: 40, 0: 2}
	data, err := stickyBalancer{held: func() map[int]int { return held }}.UserData()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := decodeHeld(data); err != nil || !maps.Equal(back, held) {
		t.Fatalf("decoded %v (%v), want %v", back, err, held)
	}
	var partitions []kafkago.Partition
	for i := range 4 {
		partitions = append(partitions, kafkago.Partition{Topic: "in", ID: i}, kafkago.Partition{Topic: "other", ID: i})
	}
	got := stickyBalancer{}.AssignGroups([]kafkago.GroupMember{
		{ID: "a", Topics: []string{"in"}, UserData: data},
		{ID: "b", Topics: []string{"in", "other"}, UserData: []byte{0xff}},
	}, partitions)
	if !slices.Contains(got["a"]["in"], 3) || !slices.Contains(got["a"]["in"], 0) {
		t.Errorf("a lost the partitions it held: %v", got)
	}
	if len(got["b"]["in"]) != 2 || len(got["b"]["other"]) != 4 || got["a"]["other"] != nil {
		t.Errorf("want b with two of in and all of other: %v", got)
	}
}

func FuzzStickyAssignment(f *testing.F) {
	f.Add(uint8(3), uint8(6), []byte{0, 10, 1, 3, 2, 7})
	f.Add(uint8(1), uint8(1), []byte{})
	f.Add(uint8(5), uint8(2), []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, nMembers, nParts uint8, data []byte) {
		members := make([]string, int(nMembers%12))
		for i := range members {
			members[i] = fmt.Sprintf("m%d", i)
		}
		partitions := make([]int, int(nParts%40))
		for i := range partitions {
			partitions[i] = i
		}
		// Each member claims what the data says, read as member data.
		claims := map[string]map[int]int{}
		for i, m := range members {
			if len(data) == 0 {
				break
			}
			chunk := data[i%len(data):]
			if held, err := decodeHeld(chunk); err == nil {
				claims[m] = held
			}
		}
		got := assignSticky(members, partitions, claims)
		if len(members) == 0 {
			if len(got) != 0 {
				t.Fatalf("no members, yet %v", got)
			}
			return
		}
		checkBalanced(t, members, partitions, got)
		// A single member gets every partition, those it claims among them.
		if held, err := decodeHeld(data); err == nil && len(members) == 1 {
			for p := range held {
				if p < len(partitions) && !slices.Contains(got[members[0]], p) {
					t.Fatalf("the only member lost partition %d: %v", p, got)
				}
			}
		}
	})
}

// Balance wins over stickiness: three members holding two partitions each
// cannot all keep them when a fourth joins.
func TestStickyStaysBalanced(t *testing.T) {
	members := []string{"a", "b", "c", "d"}
	parts := []int{0, 1, 2, 3, 4, 5}
	got := assignSticky(members, parts, map[string]map[int]int{
		"a": {0: 9, 1: 8},
		"b": {2: 7, 3: 6},
		"c": {4: 5, 5: 4},
	})
	checkBalanced(t, members, parts, got)
	if len(got["d"]) != 1 {
		t.Errorf("the new member got %v", got["d"])
	}
	if !slices.Equal(got["a"], []int{0, 1}) || !slices.Equal(got["b"], []int{2, 3}) || !slices.Contains(got["c"], 4) {
		t.Errorf("the busiest partitions moved: %v", got)
	}
}

// TestRebalanceLeavesHeldPartitionsWhereTheyAre: three replicas hold
// records of the sink unsettled (a CRM down), and one leaves. The two that
// stay keep the partitions they hold records of: neither is handed records
// the other holds, so nothing they hold is delivered twice.
func TestRebalanceLeavesHeldPartitionsWhereTheyAre(t *testing.T) {
	brokers := newCluster(t, 6)
	qs := []*Queue{openQueue(t, brokers, nil), openQueue(t, brokers, nil), openQueue(t, brokers, nil)}
	for _, q := range qs {
		subscribe(t, q, "a")
	}
	waitMembers(t, brokers, group+".a", 3)
	evs := spreadEvents(60, "t.a", 60)
	enqueue(t, qs[0], evs...)

	held := make([]map[string]bool, len(qs))
	collect := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			for i, q := range qs {
				if q == nil {
					continue
				}
				ds, err := q.TryNext("a", 100, 0)
				if err != nil {
					t.Fatal(err)
				}
				if held[i] == nil {
					held[i] = map[string]bool{}
				}
				for _, id := range idsOf(t, ds) {
					if i < 2 && held[1-i][id] {
						t.Errorf("replica %d was handed %s, which replica %d holds", i, id, 1-i)
					}
					held[i][id] = true
				}
			}
		}
	}
	collect(2 * time.Second)
	if n := len(held[0]) + len(held[1]) + len(held[2]); n != len(evs) {
		t.Fatalf("the replicas hold %d records of %d", n, len(evs))
	}
	for i := range qs {
		if len(held[i]) == 0 {
			t.Fatalf("replica %d holds nothing: %d, %d, %d", i, len(held[0]), len(held[1]), len(held[2]))
		}
	}
	// The third leaves without settling: the two others share its records.
	if err := qs[2].Close(); err != nil {
		t.Fatal(err)
	}
	qs[2] = nil
	waitMembers(t, brokers, group+".a", 2)
	left := held[2]
	held[2] = nil
	collect(3 * time.Second)
	for id := range left {
		if !held[0][id] && !held[1][id] {
			t.Errorf("%s, held by the replica that left, was not delivered again", id)
		}
	}
	t.Logf("held %d and %d after the rebalance; %d were the leaver's", len(held[0]), len(held[1]), len(left))
}
