package discordtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestWebhookLimit(t *testing.T) {
	s := New(t, WithWebhookLimit(WebhookLimit{Posts: 2, Per: time.Minute}))
	s.AddChannel("1", "10", "a")
	s.AddChannel("1", "11", "b")
	w1, w2 := s.AddWebhook("10", "one", s.AppID), s.AddWebhook("11", "two", s.AppID)
	post := func(w struct{ id, token string }) *http.Response {
		t.Helper()
		resp, err := http.Post(s.URL+api+"/webhooks/"+w.id+"/"+w.token+"?wait=true", "application/json",
			bytes.NewReader([]byte(`{"content":"hi"}`)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	h1, h2 := struct{ id, token string }{w1.ID, w1.Token}, struct{ id, token string }{w2.ID, w2.Token}
	for i, want := range []string{"1", "0"} {
		resp := post(h1)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Remaining") != want || resp.Header.Get("X-RateLimit-Reset-After") == "" {
			t.Fatalf("post %d: %d, remaining %q, reset after %q", i, resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"), resp.Header.Get("X-RateLimit-Reset-After"))
		}
	}
	resp := post(h1)
	var body struct {
		RetryAfter float64 `json:"retry_after"`
		Global     bool    `json:"global"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusTooManyRequests || body.Global || body.RetryAfter <= 0 || body.RetryAfter > 60 {
		t.Fatalf("third post: %d, %+v; want a 429 for this webhook, within the window", resp.StatusCode, body)
	}
	if resp := post(h2); resp.StatusCode != http.StatusOK {
		t.Fatalf("another webhook's post: %d, want 200 (limits are per webhook)", resp.StatusCode)
	}
	if n := len(s.ChannelMessages("10")); n != 2 {
		t.Errorf("%d messages stored, want 2 (the refused post is not stored)", n)
	}
	s.SetWebhookLimit(WebhookLimit{})
	if resp := post(h1); resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Remaining") != "" {
		t.Fatalf("post without a limit: %d, remaining %q", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
	}
}
