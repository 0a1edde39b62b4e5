// The plan of one cluster: its ports, kubeconfigs and each component's command
// line, written by `up` to DIR/plan.json and carried out by `supervise`.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"

	clientcmd "k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// component is one process the supervisor keeps running.
type component struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Log  string   `json:"log"`
}

type plan struct {
	Dir          string      `json:"dir"`
	APIServerURL string      `json:"apiServerURL"`
	NodeName     string      `json:"nodeName,omitempty"` // empty: no node agent
	Components   []component `json:"components"`
}

const planFile = "plan.json"

func (p *plan) write() error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.Dir, planFile), data, 0o600)
}

func readPlan(dir string) (*plan, error) {
	data, err := os.ReadFile(filepath.Join(dir, planFile))
	if err != nil {
		return nil, err
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, planFile), err)
	}
	return &p, nil
}

// freePorts asks the kernel for n distinct free ports on 127.0.0.1. They are
// released before the components bind them: a small race, as in every test harness.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeKubeconfig writes a self-contained kubeconfig (certificates inline) for one identity.
func writeKubeconfig(path, server string, ca []byte, user certificate, userName string) error {
	config := clientcmdapi.NewConfig()
	config.Clusters["kjenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	config.AuthInfos[userName] = &clientcmdapi.AuthInfo{ClientCertificateData: user.certPEM, ClientKeyData: user.keyPEM}
	config.Contexts["kjenv"] = &clientcmdapi.Context{Cluster: "kjenv", AuthInfo: userName, Namespace: "default"}
	config.CurrentContext = "kjenv"
	return clientcmd.WriteToFile(*config, path)
}
