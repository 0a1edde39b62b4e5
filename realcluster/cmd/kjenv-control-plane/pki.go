// The cluster's certificates and keys, made afresh by each `up`: one CA that
// signs every serving and client certificate, and the ServiceAccount key pair.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certificate is one signed certificate with its key, PEM-encoded.
type certificate struct {
	certPEM, keyPEM []byte
}

type certRequest struct {
	commonName   string
	organization []string
	server       bool
	dnsNames     []string
	ips          []net.IP
}

type authority struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
	certificate
}

// validity: long enough for any test run, short enough to be obviously disposable.
const validity = 7 * 24 * time.Hour

func newKey() (*rsa.PrivateKey, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func newAuthority() (*authority, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kjenv-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, certificate: certificate{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  keyPEM,
	}}, nil
}

func (ca *authority) issue(req certRequest) (certificate, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return certificate{}, err
	}
	now := time.Now()
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if req.server {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	template := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.commonName, Organization: req.organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usage,
		DNSNames:     req.dnsNames,
		IPAddresses:  req.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return certificate{}, fmt.Errorf("sign %s: %w", req.commonName, err)
	}
	return certificate{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM: keyPEM}, nil
}

// clusterPKI is everything `up` generates, by the name its files get in DIR/pki.
type clusterPKI struct {
	ca    *authority
	certs map[string]certificate // name -> cert; files NAME.crt and NAME.key
	// ServiceAccount token signing: sa.key (private), sa.pub (public).
	saKeyPEM, saPubPEM []byte
}

func generatePKI(nodeName string) (*clusterPKI, error) {
	ca, err := newAuthority()
	if err != nil {
		return nil, err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	requests := map[string]certRequest{
		"apiserver": {commonName: "kube-apiserver", server: true, ips: loopback,
			dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"}},
		"apiserver-kubelet-client": {commonName: "kube-apiserver-kubelet-client", organization: []string{"system:masters"}},
		"admin":                    {commonName: "kjenv-admin", organization: []string{"system:masters"}},
		"controller-manager":       {commonName: "system:kube-controller-manager"},
		"scheduler":                {commonName: "system:kube-scheduler"},
		"kubelet":                  {commonName: "system:node:" + nodeName, organization: []string{"system:nodes"}},
		"kubelet-serving": {commonName: "system:node:" + nodeName, organization: []string{"system:nodes"},
			server: true, ips: loopback, dnsNames: []string{"localhost", nodeName}},
	}
	pki := &clusterPKI{ca: ca, certs: map[string]certificate{}}
	for name, req := range requests {
		if pki.certs[name], err = ca.issue(req); err != nil {
			return nil, err
		}
	}
	saKey, saKeyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	pki.saKeyPEM = saKeyPEM
	pki.saPubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return pki, nil
}

// write puts the files in dir (DIR/pki), keys readable by the owner only.
func (p *clusterPKI) write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"ca.crt": p.ca.certPEM, "ca.key": p.ca.keyPEM, "sa.key": p.saKeyPEM, "sa.pub": p.saPubPEM}
	for name, c := range p.certs {
		files[name+".crt"], files[name+".key"] = c.certPEM, c.keyPEM
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
