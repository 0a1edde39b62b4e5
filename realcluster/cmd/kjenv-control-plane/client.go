// The few API calls `up` makes as cluster-admin to know the cluster is usable.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type adminClient struct {
	server string
	http   *http.Client
}

func newAdminClient(dir string) (*adminClient, error) {
	p, err := readPlan(dir)
	if err != nil {
		return nil, err
	}
	pkiDir := filepath.Join(dir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin.crt"), filepath.Join(pkiDir, "admin.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}
	return &adminClient{server: p.APIServerURL, http: &http.Client{Transport: transport, Timeout: 5 * time.Second}}, nil
}

func (c *adminClient) get(path string) (int, []byte, error) {
	resp, err := c.http.Get(c.server + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// poll calls check every 250 ms until it says done, the time is up, or the
// supervisor is gone (then waiting longer cannot help).
func poll(what string, timeout time.Duration, alive func() bool, check func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for {
		done, state := check()
		if done {
			return nil
		}
		if state != "" {
			last = state
		}
		if !alive() {
			return fmt.Errorf("the supervisor ended while waiting for %s (last: %s)", what, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s (last: %s)", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitReady waits for /readyz and then for the ServiceAccount default/default,
// without which the ServiceAccount admission plugin rejects pods.
func (c *adminClient) waitReady(timeout time.Duration, alive func() bool) error {
	start := time.Now()
	err := poll("the API server's /readyz", timeout, alive, func() (bool, string) {
		code, body, err := c.get("/readyz")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK && strings.TrimSpace(string(body)) == "ok", fmt.Sprintf("HTTP %d", code)
	})
	if err != nil {
		return err
	}
	return poll("the ServiceAccount default/default", timeout-time.Since(start), alive, func() (bool, string) {
		code, _, err := c.get("/api/v1/namespaces/default/serviceaccounts/default")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("HTTP %d", code)
	})
}

func (c *adminClient) waitNodeReady(name string, timeout time.Duration, alive func() bool) error {
	return poll("node "+name+" Ready", timeout, alive, func() (bool, string) {
		code, body, err := c.get("/api/v1/nodes/" + name)
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusOK {
			return false, fmt.Sprintf("HTTP %d", code)
		}
		ready, err := nodeReady(body)
		if err != nil {
			return false, err.Error()
		}
		return ready, "registered, not Ready"
	})
}

func nodeReady(body []byte) (bool, error) {
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status string } `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal(body, &node); err != nil {
		return false, errors.New("node: " + err.Error())
	}
	for _, c := range node.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True", nil
		}
	}
	return false, nil
}
