package kafkaqueue

import (
	"cmp"
	"encoding/binary"
	"errors"
	"slices"

	kafkago "github.com/segmentio/kafka-go"
)

// stickyProtocol names the group protocol of stickyBalancer. Members that
// do not all offer it agree on kafka-go's range balancer instead.
const stickyProtocol = "hookbridge-sticky"

// stickyBalancer assigns a sink's consumer group's partitions so that a
// rebalance moves as few of the records replicas held as it can. A replica
// hands back what it held undelivered before a rebalance, and whoever gets
// the partition reads it again: kept with its holder, a conversation stays
// with its replica (its Slack thread, its order at the CRM) and the
// records are read again where they were decoded and deduplicated before.
// Each member says in its join which partitions it held records of when
// its last generation ended, and how many; the group's leader leaves each
// partition with its holder, the busiest first, as far as a balanced
// assignment allows (member counts differing by at most one), and spreads
// the rest.
type stickyBalancer struct {
	// held reports the partitions of the topic this member held records
	// of, with how many.
	held func() map[int]int
}

func (b stickyBalancer) ProtocolName() string { return stickyProtocol }

func (b stickyBalancer) UserData() ([]byte, error) { return encodeHeld(b.held()), nil }

// encodeHeld writes held as varint pairs (partition, count), by partition.
func encodeHeld(held map[int]int) []byte {
	parts := make([]int, 0, len(held))
	for p := range held {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var out []byte
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(p))
		out = binary.AppendUvarint(out, uint64(held[p]))
	}
	return out
}

// decodeHeld reads what encodeHeld wrote.
func decodeHeld(data []byte) (map[int]int, error) {
	held := map[int]int{}
	for len(data) > 0 {
		p, n := binary.Uvarint(data)
		if n <= 0 || p > 1<<31 {
			return nil, errors.New("kafkaqueue: malformed sticky member data")
		}
		data = data[n:]
		c, n := binary.Uvarint(data)
		if n <= 0 || c > 1<<31 {
			return nil, errors.New("kafkaqueue: malformed sticky member data")
		}
		data = data[n:]
		held[int(p)] = int(c)
	}
	return held, nil
}

func (b stickyBalancer) AssignGroups(members []kafkago.GroupMember, partitions []kafkago.Partition) kafkago.GroupMemberAssignments {
	out := kafkago.GroupMemberAssignments{}
	byTopic := map[string][]int{}
	for _, p := range partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.ID)
	}
	for topic, ids := range byTopic {
		var ms []string
		claims := map[string]map[int]int{}
		for _, m := range members {
			if !slices.Contains(m.Topics, topic) {
				continue
			}
			ms = append(ms, m.ID)
			if held, err := decodeHeld(m.UserData); err == nil {
				claims[m.ID] = held // a member whose data is unreadable claims nothing
			}
		}
		for member, parts := range assignSticky(ms, ids, claims) {
			if out[member] == nil {
				out[member] = map[string][]int{}
			}
			out[member][topic] = parts
		}
	}
	return out
}

// assignSticky gives every partition to exactly one member, members'
// counts differing by at most one, keeping each partition claimed (held
// records) with its claimant where that balance allows: the partitions with
// the most held records first, a partition two members claim with the one
// holding more.
func assignSticky(members []string, partitions []int, claims map[string]map[int]int) map[string][]int {
	out := map[string][]int{}
	if len(members) == 0 {
		return out
	}
	members = slices.Clone(members)
	slices.Sort(members)
	partitions = slices.Clone(partitions)
	slices.Sort(partitions)
	floor, extra := len(partitions)/len(members), len(partitions)%len(members)
	count := map[string]int{}
	bigs := 0 // members given floor+1
	room := func(m string) bool {
		switch {
		case count[m] < floor:
			return true
		case count[m] == floor && bigs < extra:
			return true
		}
		return false
	}
	give := func(m string, p int) {
		if count[m] == floor {
			bigs++
		}
		count[m]++
		out[m] = append(out[m], p)
	}

	type claim struct {
		member    string
		partition int
		held      int
	}
	exists := map[int]bool{}
	for _, p := range partitions {
		exists[p] = true
	}
	var cs []claim
	for _, m := range members {
		for p, n := range claims[m] {
			if exists[p] && n > 0 {
				cs = append(cs, claim{m, p, n})
			}
		}
	}
	slices.SortFunc(cs, func(a, b claim) int {
		return cmp.Or(cmp.Compare(b.held, a.held), cmp.Compare(a.partition, b.partition), cmp.Compare(a.member, b.member))
	})
	taken := map[int]bool{}
	for _, c := range cs {
		if !taken[c.partition] && room(c.member) {
			taken[c.partition] = true
			give(c.member, c.partition)
		}
	}
	for _, p := range partitions {
		if taken[p] {
			continue
		}
		// The member with the fewest partitions that has room, by name.
		best := ""
		for _, m := range members {
			if room(m) && (best == "" || count[m] < count[best]) {
				best = m
			}
		}
		give(best, p)
	}
	for m := range out {
		slices.Sort(out[m])
	}
	return out
}
