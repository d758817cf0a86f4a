package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/notify"
	"github.com/synclayer/synclayer/core/store"
)

// A delivery of format "nango" goes as the engine wrote it, signed
// X-Nango-Hmac-Sha256 = hex HMAC-SHA256(secret, body) (checked here
// independently of the signer) and X-Nango-Signature = hex SHA-256(secret
// + body); no Standard Webhooks headers. A failed attempt is retried with
// the same body and signature.
func TestNangoFormat(t *testing.T) {
	rc := newReceiver(t)
	var answered atomic.Bool
	rc.answer(func(_ received, w http.ResponseWriter) {
		if !answered.Swap(true) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	const secret = "any string at all"
	app := &config.Notify{Name: "app", URL: rc.srv.URL + "/nango", Secret: secret, Format: notify.FormatNango}
	f := newFixture(t, notify.Options{}, app)
	body := []byte(`{"connectionId":"acme","from":"nango","model":"Contact","success":true,"type":"sync"}`)
	if err := f.db.Enqueue([]store.Delivery{{EventID: "evt_1-1", Endpoint: "app", Type: "sync.completed", Body: body}}); err != nil {
		t.Fatal(err)
	}
	f.start()
	d := f.waitState("evt_1-1.app", store.DeliveryDelivered)
	if statuses(d) != "503,200" {
		t.Errorf("attempts %s, want 503,200", statuses(d))
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	wantHMAC := hex.EncodeToString(mac.Sum(nil))
	legacy := sha256.Sum256(append([]byte(secret), body...))
	for i, r := range rc.requests() {
		if string(r.Body) != string(body) {
			t.Errorf("attempt %d: body %s", i, r.Body)
		}
		if got := r.Header.Get("X-Nango-Hmac-Sha256"); got != wantHMAC || notify.NangoSignature(secret, body) != wantHMAC {
			t.Errorf("attempt %d: X-Nango-Hmac-Sha256 %q, want %q", i, got, wantHMAC)
		}
		if got := r.Header.Get("X-Nango-Signature"); got != hex.EncodeToString(legacy[:]) {
			t.Errorf("attempt %d: X-Nango-Signature %q", i, got)
		}
		if r.Header.Get("webhook-signature") != "" {
			t.Errorf("attempt %d: a Standard Webhooks signature too", i)
		}
	}
}
