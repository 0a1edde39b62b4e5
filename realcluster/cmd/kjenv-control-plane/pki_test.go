package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"testing"
)

func parse(t *testing.T, c certificate) *x509.Certificate {
	t.Helper()
	if _, err := tls.X509KeyPair(c.certPEM, c.keyPEM); err != nil {
		t.Fatalf("key does not match certificate: %v", err)
	}
	block, _ := pem.Decode(c.certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// The identities are the contract with the API server's authorizers (Node,
// RBAC) and with the node agent: names and groups must be exactly these.
func TestPKIIdentities(t *testing.T) {
	pki, err := generatePKI("kjenv-node")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.ca.cert)
	want := map[string]struct {
		cn     string
		groups []string
		usage  x509.ExtKeyUsage
	}{
		"admin":                    {"kjenv-admin", []string{"system:masters"}, x509.ExtKeyUsageClientAuth},
		"apiserver-kubelet-client": {"kube-apiserver-kubelet-client", []string{"system:masters"}, x509.ExtKeyUsageClientAuth},
		"controller-manager":       {"system:kube-controller-manager", nil, x509.ExtKeyUsageClientAuth},
		"scheduler":                {"system:kube-scheduler", nil, x509.ExtKeyUsageClientAuth},
		"kubelet":                  {"system:node:kjenv-node", []string{"system:nodes"}, x509.ExtKeyUsageClientAuth},
		"kubelet-serving":          {"system:node:kjenv-node", []string{"system:nodes"}, x509.ExtKeyUsageServerAuth},
		"apiserver":                {"kube-apiserver", nil, x509.ExtKeyUsageServerAuth},
	}
	for name, w := range want {
		cert := parse(t, pki.certs[name])
		if cert.Subject.CommonName != w.cn || !slices.Equal(cert.Subject.Organization, w.groups) {
			t.Errorf("%s: CN=%s O=%v, want CN=%s O=%v", name, cert.Subject.CommonName, cert.Subject.Organization, w.cn, w.groups)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{w.usage}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, hosts := range map[string][]string{
		"apiserver":       {"127.0.0.1", "localhost", "kubernetes.default.svc"},
		"kubelet-serving": {"127.0.0.1", "localhost", "kjenv-node"},
	} {
		cert := parse(t, pki.certs[name])
		for _, host := range hosts {
			if err := cert.VerifyHostname(host); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if len(pki.saKeyPEM) == 0 || len(pki.saPubPEM) == 0 {
		t.Error("no ServiceAccount key pair")
	}
}
