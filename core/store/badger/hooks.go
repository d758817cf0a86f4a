package badger

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Trigger webhooks (w/<id>) and the inbox of payload webhooks (n/<seq>).

// webhookIDBytes is the randomness of a webhook id: 160 bits.
const webhookIDBytes = 20

func (l *Layer) loadWebhooks() error {
	l.hooks = map[[32]byte]Webhook{}
	return l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxWebhook}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var w Webhook
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &w) }); err != nil {
				return fmt.Errorf("decode webhook: %w", err)
			}
			l.hooks[sha256.Sum256([]byte(w.ID))] = w
		}
		return nil
	})
}

// AddWebhook creates a trigger webhook with a random id.
func (l *Layer) AddWebhook(name string) (Webhook, error) {
	var b [webhookIDBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Webhook{}, err
	}
	w := Webhook{ID: hex.EncodeToString(b[:]), Name: name, Created: time.Now().UTC()}
	v, err := json.Marshal(w)
	if err != nil {
		return Webhook{}, err
	}
	if err := l.setLatest(func(txn *badger.Txn) error { return txn.Set(strKey(pfxWebhook, w.ID), v) }); err != nil {
		return Webhook{}, err
	}
	l.hookMu.Lock()
	l.hooks[sha256.Sum256([]byte(w.ID))] = w
	l.hookMu.Unlock()
	return w, nil
}

// DeleteWebhook removes a trigger webhook; ErrNotFound when unknown.
func (l *Layer) DeleteWebhook(id string) (Webhook, error) {
	h := sha256.Sum256([]byte(id))
	l.hookMu.RLock()
	w, ok := l.hooks[h]
	l.hookMu.RUnlock()
	if !ok {
		return Webhook{}, ErrNotFound
	}
	if err := l.setLatest(func(txn *badger.Txn) error { return txn.Delete(strKey(pfxWebhook, w.ID)) }); err != nil {
		return Webhook{}, err
	}
	l.hookMu.Lock()
	delete(l.hooks, h)
	l.hookMu.Unlock()
	return w, nil
}

// Webhooks lists the layer's trigger webhooks, oldest first.
func (l *Layer) Webhooks() []Webhook {
	l.hookMu.RLock()
	out := make([]Webhook, 0, len(l.hooks))
	for _, w := range l.hooks {
		out = append(out, w)
	}
	l.hookMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// LookupWebhook finds a trigger webhook by id. Ids are compared by their
// SHA-256, so the lookup's timing tells nothing useful about valid ids.
func (l *Layer) LookupWebhook(id string) (Webhook, bool) {
	l.hookMu.RLock()
	defer l.hookMu.RUnlock()
	w, ok := l.hooks[sha256.Sum256([]byte(id))]
	return w, ok
}

// HasWebhooks tells whether any trigger webhook was added (the default
// hook then answers 404).
func (l *Layer) HasWebhooks() bool {
	l.hookMu.RLock()
	defer l.hookMu.RUnlock()
	return len(l.hooks) > 0
}

// SetInboxLimit bounds the payload webhooks accepted but not yet published
// (0: no bound).
func (l *Layer) SetInboxLimit(n int) { l.inLimit.Store(int64(n)) }

// InboxDepth is the number of payload webhooks accepted and not yet
// published or set aside.
func (l *Layer) InboxDepth() int { return int(l.inDepth.Load()) }

// AppendInbox stores a payload webhook durably and returns its sequence
// number. Items of a layer are processed in that order. It fails with
// ErrInboxFull at the layer's inbox limit.
func (l *Layer) AppendInbox(it InboxItem) (uint64, error) {
	// Reserve the place first: concurrent requests must not all pass a
	// check made before any of them is counted.
	if n := l.inDepth.Add(1); l.inLimit.Load() > 0 && n > l.inLimit.Load() {
		l.inDepth.Add(-1)
		return 0, ErrInboxFull
	}
	err := l.setLatest(func(txn *badger.Txn) error {
		l.inboxSeq++
		it.Seq = l.inboxSeq
		if it.Received.IsZero() {
			it.Received = time.Now().UTC()
		}
		b, err := json.Marshal(it)
		if err != nil {
			return err
		}
		l.vlog.add(b)
		return txn.Set(u64Key(pfxInbox, it.Seq), b)
	})
	if err != nil {
		l.inDepth.Add(-1)
		return 0, err
	}
	l.signalInbox()
	// The caller answers 202 next: the webhook must survive a power cut.
	if err := l.durable(); err != nil {
		return 0, fmt.Errorf("store: sync the webhook inbox: %w", err)
	}
	return it.Seq, nil
}

// PendingInbox returns up to limit inbox items with a sequence number
// above after, oldest first. Processed items cost nothing to later reads:
// the walk starts at after, not at the first key ever written.
func (l *Layer) PendingInbox(after uint64, limit int) ([]InboxItem, error) {
	var out []InboxItem
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxInbox}, PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek(u64Key(pfxInbox, after+1)); it.Valid() && len(out) < limit; it.Next() {
			var item InboxItem
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &item) }); err != nil {
				return fmt.Errorf("decode inbox item: %w", err)
			}
			out = append(out, item)
		}
		return nil
	})
	return out, err
}

// OldestInbox returns when the oldest waiting payload webhook was received
// (ok false: none waits).
func (l *Layer) OldestInbox() (time.Time, bool) {
	items, err := l.PendingInbox(l.inHead.Load(), 1)
	if err != nil || len(items) == 0 {
		return time.Time{}, false
	}
	return items[0].Received, true
}

// InboxProcessed tells the layer that every item up to seq was published
// or set aside, so that OldestInbox starts after them.
func (l *Layer) InboxProcessed(seq uint64) {
	for {
		cur := l.inHead.Load()
		if seq <= cur || l.inHead.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// UpdateInbox saves an item's attempt count.
func (l *Layer) UpdateInbox(it InboxItem) error {
	b, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return l.setLatest(func(txn *badger.Txn) error { return txn.Set(u64Key(pfxInbox, it.Seq), b) })
}

// SetAsideInbox moves an item that cannot be processed out of the inbox,
// with the reason, so that it never blocks later ones; it stays under x/
// for an operator (SetAsideItems) until the event retention prunes it.
func (l *Layer) SetAsideInbox(it InboxItem, reason string) error {
	b, err := json.Marshal(struct {
		InboxItem
		Reason string    `json:"reason"`
		SetAt  time.Time `json:"set_aside_at"`
	}{it, reason, time.Now().UTC()})
	if err != nil {
		return err
	}
	var removed int
	err = l.setLatest(func(txn *badger.Txn) error {
		n, err := removeInbox(txn, it.Seq)
		if err != nil {
			return err
		}
		removed = n
		return txn.Set(u64Key(pfxSetAside, it.Seq), b)
	})
	if err == nil {
		l.inDepth.Add(-int64(removed))
	}
	return err
}

// removeInbox deletes the inbox items of seqs that are still there and
// counts them: an item set aside or dropped twice leaves the depth once.
func removeInbox(txn *badger.Txn, seqs ...uint64) (int, error) {
	n := 0
	for _, s := range seqs {
		key := u64Key(pfxInbox, s)
		if _, err := txn.Get(key); errors.Is(err, badger.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return 0, err
		}
		if err := txn.Delete(key); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// DropInbox removes items that will not be processed (they failed for
// good).
func (l *Layer) DropInbox(seqs ...uint64) error {
	var removed int
	err := l.setLatest(func(txn *badger.Txn) (err error) {
		removed, err = removeInbox(txn, seqs...)
		return err
	})
	if err == nil {
		l.inDepth.Add(-int64(removed))
	}
	return err
}

// countInbox counts the waiting items at open.
func (l *Layer) countInbox() error {
	var n int64
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxInbox}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if n == 0 {
				l.inHead.Store(binary.BigEndian.Uint64(it.Item().Key()[1:]) - 1)
			}
			n++
		}
		return nil
	})
	l.inDepth.Store(n)
	return err
}

// InboxSignal returns a channel closed when an item is added.
func (l *Layer) InboxSignal() <-chan struct{} {
	l.inMu.Lock()
	defer l.inMu.Unlock()
	if l.inSig == nil {
		l.inSig = make(chan struct{})
	}
	return l.inSig
}

func (l *Layer) signalInbox() {
	l.inMu.Lock()
	defer l.inMu.Unlock()
	if l.inSig != nil {
		close(l.inSig)
		l.inSig = nil
	}
}

// consumeInbox removes published items in a revision's commit; the
// layer's depth is updated once the commit is done (inboxConsumed).
func consumeInbox(txn *badger.Txn, seqs []uint64) error {
	for _, s := range seqs {
		if err := txn.Delete(u64Key(pfxInbox, s)); err != nil {
			return err
		}
	}
	return nil
}

func (l *Layer) inboxConsumed(n int) { l.inDepth.Add(-int64(n)) }
