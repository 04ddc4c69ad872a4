package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                      DefaultURL,
		"127.0.0.1:9000":        "http://127.0.0.1:9000",
		"http://example.com:80": "http://example.com:80",
		"https://c.example/":    "https://c.example",
	} {
		c, err := New(in, Options{})
		if err != nil || c.URL() != want {
			t.Errorf("New(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, bad := range []string{"ftp://x", "http://", "http://x/api", "http://x?a=b", "http://[::1"} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// TestModuleBytesVerifies refuses bytes that do not match their digest.
func TestModuleBytesVerifies(t *testing.T) {
	good := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(good)
	digest := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/modules/by-digest/" + digest:
			w.Write(good)
		case "/v1/modules/by-digest/" + strings.Repeat("0", 64):
			w.Write(good) // the wrong bytes for that digest
		case "/v1/modules/by-digest/" + strings.Repeat("1", 64):
			w.Write(make([]byte, 100)) // over the limit below
		default:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>proxy error</html>"))
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, Options{MaxModuleBytes: 64})
	ctx := context.Background()
	if b, err := c.ModuleBytes(ctx, digest); err != nil || string(b) != string(good) {
		t.Errorf("good: %v", err)
	}
	if _, err := c.ModuleBytes(ctx, strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("mismatch: %v", err)
	}
	if _, err := c.ModuleBytes(ctx, strings.Repeat("1", 64)); err == nil || !strings.Contains(err.Error(), "larger than 64") {
		t.Errorf("too large: %v", err)
	}
	_, err := c.Overview(ctx)
	var ce *Error
	if !errors.As(err, &ce) || ce.Status != 502 || !strings.Contains(ce.Message, "proxy error") {
		t.Errorf("non-JSON error page: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := New(url, Options{})
	if _, err := c.Jobs(context.Background()); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "WEIR_COORDINATOR") {
		t.Errorf("err = %v", err)
	}
}
