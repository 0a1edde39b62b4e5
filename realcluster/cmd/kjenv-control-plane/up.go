// `up`: make the cluster's files, start the supervisor in the background and
// wait until the API server is ready (and the node, when there is one).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const nodeName = "kjenv-node"

// serviceClusterIPRange is only a value the API server allocates Service IPs
// from; nothing here routes to it (there is no kube-proxy).
const serviceClusterIPRange = "10.0.0.0/24"

func runUp(args []string) int {
	flags := flag.NewFlagSet("up", flag.ExitOnError)
	dir := flags.String("dir", "", "the cluster's folder (created)")
	watchPID := flags.Int("watch-pid", 0, "stop the cluster when this process ends (0: only on down)")
	kubelet := flags.String("kubelet", "", "the node agent's binary (empty: no node)")
	readyTimeout := flags.Duration("ready-timeout", 180*time.Second, "how long to wait for /readyz")
	nodeTimeout := flags.Duration("node-timeout", 60*time.Second, "how long to wait for the node to be Ready")
	_ = flags.Parse(args)
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "up: --dir is required")
		return 2
	}
	absDir, err := filepath.Abs(*dir)
	if err == nil {
		err = up(absDir, *watchPID, *kubelet, *readyTimeout, *nodeTimeout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "real-cluster up: %v\n", err)
		return 1
	}
	fmt.Println(filepath.Join(absDir, "kubeconfig"))
	return 0
}

func up(dir string, watchPID int, kubelet string, readyTimeout, nodeTimeout time.Duration) error {
	// The supervisor outlives us: it must not hold the caller's pipes or locks
	// that we inherited beyond stdin, stdout and stderr.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err := prepareDir(dir); err != nil {
		return err
	}
	p, err := writeCluster(dir, kubelet)
	if err != nil {
		return err
	}
	supervisor, err := startSupervisor(dir, watchPID)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = supervisor.Signal(syscall.SIGTERM)
		waitGone(supervisor.Pid, 30*time.Second)
		return fmt.Errorf("%w (logs: %s)", err, filepath.Join(dir, "logs"))
	}
	client, err := newAdminClient(dir)
	if err != nil {
		return fail(err)
	}
	alive := func() bool { return syscall.Kill(supervisor.Pid, 0) == nil }
	if err := client.waitReady(readyTimeout, alive); err != nil {
		return fail(err)
	}
	if p.NodeName != "" {
		if err := client.waitNodeReady(p.NodeName, nodeTimeout, alive); err != nil {
			return fail(err)
		}
	}
	return nil
}

// prepareDir makes DIR empty: a folder left by an earlier cluster that is no
// longer running is cleared, anything else is refused.
func prepareDir(dir string) error {
	if pid, ok := runningSupervisor(dir); ok {
		return fmt.Errorf("a cluster is already running in %s (supervisor pid %d): run down first", dir, pid)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, planFile)); err != nil {
			return fmt.Errorf("%s exists and is not a cluster's folder: give an empty or new folder", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	for _, sub := range []string{"logs", "etcd", "pki"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// writeCluster writes DIR/pki, the kubeconfigs and DIR/plan.json.
func writeCluster(dir, kubelet string) (*plan, error) {
	pki, err := generatePKI(nodeName)
	if err != nil {
		return nil, err
	}
	pkiDir := filepath.Join(dir, "pki")
	if err := pki.write(pkiDir); err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, cmPort, schedPort, kubeletPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	kubeconfigs := map[string]string{
		"kubeconfig":                    "admin",
		"kubelet.kubeconfig":            "kubelet",
		"controller-manager.kubeconfig": "controller-manager",
		"scheduler.kubeconfig":          "scheduler",
	}
	for file, identity := range kubeconfigs {
		if err := writeKubeconfig(filepath.Join(dir, file), server, pki.ca.certPEM, pki.certs[identity], identity); err != nil {
			return nil, err
		}
	}

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := func(name string) string { return filepath.Join(pkiDir, name) }
	logs := func(name string) string { return filepath.Join(dir, "logs", name+".log") }
	p := &plan{Dir: dir, APIServerURL: server}
	p.Components = []component{
		{Name: "etcd", Log: logs("etcd"), Argv: []string{self, "etcd",
			"--data-dir=" + filepath.Join(dir, "etcd"),
			"--client-port=" + strconv.Itoa(etcdClient), "--peer-port=" + strconv.Itoa(etcdPeer)}},
		{Name: "apiserver", Log: logs("apiserver"), Argv: []string{self, "apiserver",
			fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClient),
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			// The reconciler of Endpoints default/kubernetes refuses a loopback
			// address; nothing here routes Services anyway.
			"--endpoint-reconciler-type=none",
			"--secure-port=" + strconv.Itoa(apiPort),
			"--tls-cert-file=" + f("apiserver.crt"), "--tls-private-key-file=" + f("apiserver.key"),
			"--client-ca-file=" + f("ca.crt"),
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + f("sa.pub"),
			"--service-account-signing-key-file=" + f("sa.key"),
			"--service-cluster-ip-range=" + serviceClusterIPRange,
			"--kubelet-client-certificate=" + f("apiserver-kubelet-client.crt"),
			"--kubelet-client-key=" + f("apiserver-kubelet-client.key"),
			"--kubelet-certificate-authority=" + f("ca.crt"),
			"--kubelet-preferred-address-types=InternalIP",
			"--profiling=false"}},
		{Name: "controller-manager", Log: logs("controller-manager"), Argv: []string{self, "controller-manager",
			"--kubeconfig=" + filepath.Join(dir, "controller-manager.kubeconfig"),
			"--authentication-kubeconfig=" + filepath.Join(dir, "controller-manager.kubeconfig"),
			"--authorization-kubeconfig=" + filepath.Join(dir, "controller-manager.kubeconfig"),
			"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(cmPort),
			"--controllers=*", "--leader-elect=false",
			"--use-service-account-credentials=true",
			"--root-ca-file=" + f("ca.crt"),
			"--service-account-private-key-file=" + f("sa.key"),
			"--cluster-signing-cert-file=" + f("ca.crt"), "--cluster-signing-key-file=" + f("ca.key"),
			"--service-cluster-ip-range=" + serviceClusterIPRange,
			"--profiling=false"}},
		{Name: "scheduler", Log: logs("scheduler"), Argv: []string{self, "scheduler",
			"--kubeconfig=" + filepath.Join(dir, "scheduler.kubeconfig"),
			"--authentication-kubeconfig=" + filepath.Join(dir, "scheduler.kubeconfig"),
			"--authorization-kubeconfig=" + filepath.Join(dir, "scheduler.kubeconfig"),
			"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(schedPort),
			"--leader-elect=false", "--profiling=false"}},
	}
	if kubelet != "" {
		p.NodeName = nodeName
		p.Components = append(p.Components, component{Name: "kubelet", Log: logs("kubelet"), Argv: []string{kubelet,
			"--kubeconfig", filepath.Join(dir, "kubelet.kubeconfig"),
			"--node-name", nodeName,
			"--root", filepath.Join(dir, "node"),
			"--port", strconv.Itoa(kubeletPort),
			"--tls-cert-file", f("kubelet-serving.crt"),
			"--tls-private-key-file", f("kubelet-serving.key"),
			"--client-ca-file", f("ca.crt")}})
		if err := os.MkdirAll(filepath.Join(dir, "node"), 0o700); err != nil {
			return nil, err
		}
	}
	return p, p.write()
}

// startSupervisor starts `supervise` in a session of its own, detached from the
// caller's terminal and pipes, so that `up` can return while it runs.
func startSupervisor(dir string, watchPID int) (*os.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(filepath.Join(dir, "logs", "supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(self, "supervise", "--dir="+dir, "--watch-pid="+strconv.Itoa(watchPID))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start supervisor: %w", err)
	}
	// Reap it if it dies while we wait, so that kill(pid, 0) sees it gone.
	go func() { _ = cmd.Wait() }()
	return cmd.Process, nil
}

func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
