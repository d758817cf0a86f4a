package postgres

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// Trigger webhooks (synclayer_webhooks). Every read goes to the database,
// so a webhook added or deleted on one host counts on every host at once.
// The reads have no error to return (store.Inbox): a failed one is logged
// and answers as if the webhook were unknown (LookupWebhook) or as if the
// layer had webhooks (HasWebhooks, so that the default hook stays shut).

// webhookIDBytes is the randomness of a webhook id: 160 bits.
const webhookIDBytes = 20

// AddWebhook creates a trigger webhook with a random id.
func (l *Layer) AddWebhook(name string) (store.Webhook, error) {
	if l.sys.closed.Load() {
		return store.Webhook{}, store.ErrClosed
	}
	var b [webhookIDBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return store.Webhook{}, err
	}
	// The database keeps microseconds: the webhook returned is the one
	// read back later.
	w := store.Webhook{ID: hex.EncodeToString(b[:]), Name: name, Created: time.Now().UTC().Truncate(time.Microsecond)}
	h := sha256.Sum256([]byte(w.ID))
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.s.pool.Exec(ctx, `INSERT INTO synclayer_webhooks (layer_id, id_hash, id, name, created) VALUES ($1, $2, $3, $4, $5)`,
		l.id, h[:], w.ID, w.Name, w.Created); err != nil {
		return store.Webhook{}, fmt.Errorf("store: add a webhook to layer %q: %w", l.name, err)
	}
	return w, nil
}

// DeleteWebhook removes a trigger webhook; store.ErrNotFound when unknown.
func (l *Layer) DeleteWebhook(id string) (store.Webhook, error) {
	if l.sys.closed.Load() {
		return store.Webhook{}, store.ErrClosed
	}
	h := sha256.Sum256([]byte(id))
	ctx, cancel := l.ctx()
	defer cancel()
	w, err := scanWebhook(l.s.pool.QueryRow(ctx, `DELETE FROM synclayer_webhooks WHERE layer_id = $1 AND id_hash = $2
		RETURNING id, name, created`, l.id, h[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Webhook{}, store.ErrNotFound
	}
	if err != nil {
		return store.Webhook{}, fmt.Errorf("store: delete a webhook of layer %q: %w", l.name, err)
	}
	return w, nil
}

func scanWebhook(row pgx.Row) (store.Webhook, error) {
	var w store.Webhook
	err := row.Scan(&w.ID, &w.Name, &w.Created)
	w.Created = w.Created.UTC()
	return w, err
}

// Webhooks lists the layer's trigger webhooks, oldest first.
func (l *Layer) Webhooks() []store.Webhook {
	ctx, cancel := l.ctx()
	defer cancel()
	out := []store.Webhook{}
	rows, err := l.s.pool.Query(ctx, `SELECT id, name, created FROM synclayer_webhooks WHERE layer_id = $1 ORDER BY created, id`, l.id)
	if err == nil {
		for rows.Next() {
			w, serr := scanWebhook(rows)
			if serr != nil {
				err = serr
				break
			}
			out = append(out, w)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		l.log.Error("could not list the trigger webhooks", "error", err)
		return []store.Webhook{}
	}
	return out
}

// LookupWebhook finds a trigger webhook by id. Ids are compared by their
// SHA-256, so the lookup's timing tells nothing useful about valid ids.
func (l *Layer) LookupWebhook(id string) (store.Webhook, bool) {
	h := sha256.Sum256([]byte(id))
	ctx, cancel := l.ctx()
	defer cancel()
	w, err := scanWebhook(l.s.pool.QueryRow(ctx, `SELECT id, name, created FROM synclayer_webhooks WHERE layer_id = $1 AND id_hash = $2`, l.id, h[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Webhook{}, false
	}
	if err != nil {
		l.log.Error("could not look a trigger webhook up", "error", err)
		return store.Webhook{}, false
	}
	return w, true
}

// HasWebhooks tells whether any trigger webhook was added (the default
// hook then answers 404).
func (l *Layer) HasWebhooks() bool {
	ctx, cancel := l.ctx()
	defer cancel()
	var ok bool
	if err := l.s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM synclayer_webhooks WHERE layer_id = $1)`, l.id).Scan(&ok); err != nil {
		l.log.Error("could not tell whether the layer has trigger webhooks; the default hook stays shut", "error", err)
		return true
	}
	return ok
}
