package graphql

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/synclayer/synclayer/core/store"
)

// Field statistics: which attributes the records of each (source, model)
// hold, with which JSON kinds, in one revision, over every connection of
// the source (one type per model, whatever the number of connections). They decide which types and
// fields a revision's schema has.
//
// They are computed once per revision and cached, incrementally: the
// statistics of revision N are those of a cached earlier revision M plus,
// for each record changed after M (the store's Changes walk, in proportion
// to the change), its new version added and its version at M taken away.
// Only the first revision a process serves, or one older than every cached
// one, is computed by a walk of the whole revision. This keeps publishing
// as cheap as it was (nothing is parsed at publish) and costs a request
// only the changes since the last revision it saw.

type kind uint8

const (
	kString kind = iota
	kInt
	kFloat
	kBool
	kObject
	kArray
	kNull
	numKinds
)

// fieldStat counts the values of one attribute by kind.
type fieldStat [numKinds]int64

// modelStats are the statistics of one (source, model).
type modelStats struct {
	Records int64 // every record, deleted ones too
	Live    int64 // records not deleted
	// Connected counts the records that belong to a connection.
	Connected int64
	Fields    map[string]*fieldStat
}

// revStats are the statistics of one revision.
type revStats struct {
	rev    int64
	models map[typeTarget]*modelStats
}

func (s *revStats) clone() *revStats {
	c := &revStats{rev: s.rev, models: make(map[typeTarget]*modelStats, len(s.models))}
	for k, m := range s.models {
		mm := &modelStats{Records: m.Records, Live: m.Live, Connected: m.Connected, Fields: make(map[string]*fieldStat, len(m.Fields))}
		for f, fs := range m.Fields {
			v := *fs
			mm.Fields[f] = &v
		}
		c.models[k] = mm
	}
	return c
}

// kindOf classifies a JSON value by its first byte (and for numbers, its
// text: GraphQL's Int is 32 bits).
func kindOf(raw json.RawMessage) kind {
	for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t' || raw[0] == '\n' || raw[0] == '\r') {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return kNull
	}
	switch raw[0] {
	case '"':
		return kString
	case 't', 'f':
		return kBool
	case 'n':
		return kNull
	case '{':
		return kObject
	case '[':
		return kArray
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
		return kInt
	}
	return kFloat
}

// add counts (sign 1) or uncounts (sign -1) one record.
func (s *revStats) add(r *store.StoredRecord, sign int64) error {
	k := typeTarget{r.Source, r.Model}
	m := s.models[k]
	if m == nil {
		m = &modelStats{Fields: map[string]*fieldStat{}}
		s.models[k] = m
	}
	m.Records += sign
	if !r.Deleted() {
		m.Live += sign
	}
	if r.Connection != "" {
		m.Connected += sign
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r.Payload, &obj); err != nil {
		return fmt.Errorf("record %s/%s/%s: %w", r.Source, r.Model, r.ID, err)
	}
	for f, raw := range obj {
		fs := m.Fields[f]
		if fs == nil {
			fs = &fieldStat{}
			m.Fields[f] = fs
		}
		fs[kindOf(raw)] += sign
	}
	if m.Records == 0 {
		delete(s.models, k)
	}
	return nil
}

// statsCache keeps the statistics of a layer's recent revisions.
type statsCache struct {
	mu   sync.Mutex // one computation at a time
	revs []*revStats
}

const statsKept = 8

// get returns the statistics of the snapshot's revision. open opens a
// snapshot of an older revision.
func (c *statsCache) get(snap store.Snapshot, open func(int64) (store.Snapshot, error)) (*revStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := snap.Revision().Number
	var base *revStats
	for _, s := range c.revs {
		if s.rev == n {
			return s, nil
		}
		if s.rev < n && (base == nil || s.rev > base.rev) {
			base = s
		}
	}
	var out *revStats
	if base != nil {
		out = c.delta(snap, base, open)
	}
	if out == nil {
		out = &revStats{rev: n, models: map[typeTarget]*modelStats{}}
		if err := snap.Changes(0, func(r *store.StoredRecord) error { return out.add(r, 1) }); err != nil {
			return nil, err
		}
	}
	c.revs = append(c.revs, out)
	if len(c.revs) > statsKept {
		c.revs = c.revs[1:]
	}
	return out, nil
}

// delta derives the statistics of snap's revision from base's; nil when
// base's revision cannot be read any more.
func (c *statsCache) delta(snap store.Snapshot, base *revStats, open func(int64) (store.Snapshot, error)) *revStats {
	old, err := open(base.rev)
	if err != nil {
		return nil
	}
	defer old.Close()
	out := base.clone()
	out.rev = snap.Revision().Number
	err = snap.Changes(base.rev, func(r *store.StoredRecord) error {
		prev, found, err := old.Get(store.SourceKey(r.Source, r.Connection), r.Model, r.ID)
		if err != nil {
			return err
		}
		if found {
			if err := out.add(&prev, -1); err != nil {
				return err
			}
		}
		return out.add(r, 1)
	})
	if err != nil || !old.Retained() {
		return nil // versions of base may be gone: walk the whole revision
	}
	return out
}
