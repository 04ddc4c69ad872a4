package netstack

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Processes sharing a folder end up with one CA, whoever creates it.
func TestLoadOrCreateCAShared(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	const n = 6
	cas := make([]*CA, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); cas[i], errs[i] = LoadOrCreateCA(dir) }()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(cas[i].Cert.Raw, cas[0].Cert.Raw) || cas[i].Key == nil {
			t.Fatalf("loader %d got another CA", i)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != CAFile {
		t.Fatalf("folder holds %v, want only %s", entries, CAFile)
	}
	// A leaf it issues verifies against the loaded certificate alone.
	leaf, err := cas[3].Issue("w1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := again.PEM()
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := ParseCA(certPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(verifier.Cert)
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tlsServerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	if _, err := verifier.Issue("w2"); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("a CA without key issued: %v", err)
	}
}

func TestParseCARejects(t *testing.T) {
	if _, err := ParseCA([]byte("not pem"), nil); err == nil || !strings.Contains(err.Error(), "no CERTIFICATE") {
		t.Fatalf("garbage: %v", err)
	}
	ca := testCA()
	leaf, err := ca.Issue("w")
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	if _, err := ParseCA(leafPEM, nil); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("a leaf as CA: %v", err)
	}
}

// A worker given its leaf and only the CA's certificate (no key), as a
// production cluster would hand them out, joins the cluster.
func TestTransportWithGivenLeaf(t *testing.T) {
	checkNoLeak(t)
	certPEM, _, err := testCA().PEM()
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := ParseCA(certPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := testCA().Issue("given")
	if err != nil {
		t.Fatal(err)
	}
	a := newTransport(t, Options{CA: verifier, Certificate: &leaf})
	b := newTransport(t, Options{})
	gate := NewInputGate()
	if _, err := b.ListenGate(gate, GateOptions{BufferSize: 64}, RemoteChannel{ID: "g", Ch: gate.AddChannel(nil)}); err != nil {
		t.Fatal(err)
	}
	sp, err := a.Dial(context.Background(), b.Addr(), "g", 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	must(t, sp.SendEvent(Event{Kind: 7}))
	if _, m := next(t, gate); m.Event.Kind != 7 {
		t.Fatalf("got %+v", m)
	}
	must(t, sp.Close())
}
