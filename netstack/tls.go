package netstack

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Mutual TLS between workers: every worker holds a leaf certificate signed
// by the cluster's CA and accepts only peers whose leaf the same CA signed.
// Host names are not checked: membership of the cluster is what a peer
// proves, and every leaf names the same server name, tlsServerName.

const (
	tlsServerName = "weir-netstack"
	alpn          = "weir-netstack/1"
	// CAFile is the file LoadOrCreateCA keeps the cluster CA in.
	CAFile = "cluster-ca.pem"
)

// CA is a cluster's certificate authority. Key may be nil on a worker
// given its own leaf: it then only verifies peers.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA generates a cluster CA (ECDSA P-256, valid ten years).
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("netstack: generating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"weir cluster"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("netstack: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("netstack: parsing CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// PEM encodes the CA's certificate and, when present, its key.
func (ca *CA) PEM() (certPEM, keyPEM []byte, err error) {
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	if ca.Key == nil {
		return certPEM, nil, nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("netstack: encoding CA key: %w", err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCA reads a CA from PEM: a certificate and, optionally (keyPEM nil
// or in the same bytes), its PKCS#8 key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	ca := &CA{}
	for _, data := range [][]byte{certPEM, keyPEM} {
		for {
			var blk *pem.Block
			blk, data = pem.Decode(data)
			if blk == nil {
				break
			}
			switch blk.Type {
			case "CERTIFICATE":
				cert, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					return nil, fmt.Errorf("netstack: parsing CA certificate: %w", err)
				}
				if !cert.IsCA {
					return nil, fmt.Errorf("netstack: parsing CA: certificate %q is not a CA", cert.Subject.CommonName)
				}
				ca.Cert = cert
			case "PRIVATE KEY":
				k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
				if err != nil {
					return nil, fmt.Errorf("netstack: parsing CA key: %w", err)
				}
				s, ok := k.(crypto.Signer)
				if !ok {
					return nil, fmt.Errorf("netstack: parsing CA key: %T cannot sign", k)
				}
				ca.Key = s
			}
		}
	}
	if ca.Cert == nil {
		return nil, errors.New("netstack: parsing CA: no CERTIFICATE block")
	}
	return ca, nil
}

// LoadOrCreateCA returns the CA kept in dir/CAFile, creating it (and dir)
// when there is none. Processes that share dir race safely: the file is
// published with a hard link, so exactly one CA wins and all load it.
// The file holds the CA's key: dir is for a cluster on one machine or in
// tests; a production cluster hands workers their leaf and the CA
// certificate only.
func LoadOrCreateCA(dir string) (*CA, error) {
	path := filepath.Join(dir, CAFile)
	if data, err := os.ReadFile(path); err == nil {
		return ParseCA(data, nil)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("netstack: creating CA folder: %w", err)
	}
	ca, err := NewCA("weir cluster CA")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.PEM()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".ca-*")
	if err != nil {
		return nil, fmt.Errorf("netstack: writing CA: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(certPEM, keyPEM...)); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("netstack: writing CA: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("netstack: writing CA: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("netstack: publishing CA: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("netstack: reading CA: %w", err)
	}
	return ParseCA(data, nil)
}

// Issue signs a leaf certificate for a worker, usable as TLS server and
// client, valid one year.
func (ca *CA) Issue(name string) (tls.Certificate, error) {
	if ca.Key == nil {
		return tls.Certificate{}, errors.New("netstack: issuing a certificate: the CA has no key (give the worker its certificate)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("netstack: generating key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"weir cluster"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{tlsServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("netstack: signing certificate for %q: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("netstack: parsing certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// tlsConfig is the configuration of both ends of a worker's connections.
func tlsConfig(ca *CA, cert tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   tlsServerName,
		NextProtos:   []string{alpn},
		MinVersion:   tls.VersionTLS13,
	}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
