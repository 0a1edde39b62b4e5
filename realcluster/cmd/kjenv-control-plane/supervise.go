// `supervise`: keep the plan's components running, and stop all of them, and
// whatever they left behind, on SIGTERM or when the watched process ends.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const pidFile = "supervisor.pid"

// grace is how long a component has between SIGTERM and SIGKILL.
const grace = 10 * time.Second

type supervisor struct {
	plan    *plan
	spawn   chan spawnRequest
	mu      sync.Mutex
	stop    bool
	running map[string]*os.Process
	done    sync.WaitGroup
	stopped chan struct{}
}

type spawnRequest struct {
	cmd    *exec.Cmd
	result chan error
}

func runSupervise(args []string) int {
	flags := flag.NewFlagSet("supervise", flag.ExitOnError)
	dir := flags.String("dir", "", "the cluster's folder, as written by up")
	watchPID := flags.Int("watch-pid", 0, "stop when this process ends (0: only on SIGTERM)")
	_ = flags.Parse(args)
	log.SetPrefix("supervisor: ")
	p, err := readPlan(*dir)
	if err != nil {
		log.Print(err)
		return 1
	}
	// Orphans of the components (a kubelet's containers) are re-parented to us,
	// so that we can see and end them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Printf("cannot become a subreaper: %v", err)
	}
	pidPath := filepath.Join(*dir, pidFile)
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		log.Print(err)
		return 1
	}
	defer os.Remove(pidPath)

	s := &supervisor{plan: p, spawn: make(chan spawnRequest), running: map[string]*os.Process{}, stopped: make(chan struct{})}
	go s.spawner()
	reason := make(chan string, 4)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() { reason <- "signal " + (<-signals).String() }()
	if *watchPID > 0 {
		go func() { watchProcess(*watchPID); reason <- fmt.Sprintf("process %d ended", *watchPID) }()
	}
	for _, c := range p.Components {
		s.done.Add(1)
		go s.keep(c)
	}
	go s.reapZombies()
	log.Printf("stopping: %s", <-reason)
	s.shutdown()
	log.Print("stopped")
	return 0
}

// spawner starts every child from one OS thread that never exits: Pdeathsig
// fires when the thread that forked the child ends, not the process.
func (s *supervisor) spawner() {
	runtime.LockOSThread()
	for req := range s.spawn {
		req.result <- req.cmd.Start()
	}
}

// keep runs one component and restarts it when it ends, with a backoff,
// until the supervisor stops.
func (s *supervisor) keep(c component) {
	defer s.done.Done()
	if c.Name != "etcd" && c.Name != "apiserver" && !s.awaitAPIServer() {
		return
	}
	backoff := time.Second
	for {
		started := time.Now()
		err := s.runOnce(c)
		if s.stopping() {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		log.Printf("%s ended (%v); restarting in %s", c.Name, err, backoff)
		select {
		case <-time.After(backoff):
		case <-s.stopped:
			return
		}
		// Short: the controller-manager ends at once while the API server starts.
		backoff = min(2*backoff, 5*time.Second)
	}
}

// awaitAPIServer waits until /readyz answers ok, or the supervisor stops (false):
// the controller-manager and the others end at once without an API server.
func (s *supervisor) awaitAPIServer() bool {
	client, err := newAdminClient(s.plan.Dir)
	if err != nil {
		log.Print(err)
		return true // let the component say what is wrong
	}
	for {
		if code, body, err := client.get("/readyz"); err == nil && code == 200 && strings.TrimSpace(string(body)) == "ok" {
			return true
		}
		select {
		case <-s.stopped:
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *supervisor) runOnce(c component) error {
	out, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.mu.Lock()
	if s.stop {
		s.mu.Unlock()
		return nil
	}
	result := make(chan error)
	s.spawn <- spawnRequest{cmd: cmd, result: result}
	if err := <-result; err != nil {
		s.mu.Unlock()
		return err
	}
	s.running[c.Name] = cmd.Process
	s.mu.Unlock()
	log.Printf("%s started, pid %d", c.Name, cmd.Process.Pid)
	err = cmd.Wait()
	s.mu.Lock()
	delete(s.running, c.Name)
	s.mu.Unlock()
	return err
}

func (s *supervisor) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop
}

// shutdown stops the node agent first (it ends its pods), then the control
// plane; SIGKILL after the grace; then every process left in our session or
// re-parented to us.
func (s *supervisor) shutdown() {
	s.mu.Lock()
	s.stop = true
	close(s.stopped)
	s.mu.Unlock()
	s.terminate([]string{"kubelet"})
	s.terminate([]string{"scheduler", "controller-manager", "apiserver"})
	s.terminate([]string{"etcd"})
	waited := make(chan struct{})
	go func() { s.done.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(grace):
		log.Print("some components did not end after SIGKILL")
	}
	killLeftovers()
}

// terminate sends SIGTERM to the named components and SIGKILL to those still
// there after the grace.
func (s *supervisor) terminate(names []string) {
	signalAll := func(sig syscall.Signal) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, name := range names {
			if p, ok := s.running[name]; ok {
				_ = p.Signal(sig)
				n++
			}
		}
		return n
	}
	if signalAll(syscall.SIGTERM) == 0 {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if signalAll(0) == 0 {
			return
		}
	}
	if n := signalAll(syscall.SIGKILL); n > 0 {
		log.Printf("SIGKILL to %d of %v after %s", n, names, grace)
	}
}

// killLeftovers ends every other process of our session and every process
// re-parented to us, until none is left (bounded).
func killLeftovers() {
	self := os.Getpid()
	sid, _ := unix.Getsid(0)
	for range 50 {
		found := 0
		for _, p := range listProcesses() {
			if p.pid != self && (p.ppid == self || p.sid == sid) {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
				found++
			}
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		if found == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Print("processes were still left after 50 rounds of SIGKILL")
}

// reapZombies waits for exited orphans, which no exec.Cmd waits for.
func (s *supervisor) reapZombies() {
	self := os.Getpid()
	for {
		select {
		case <-s.stopped:
			return
		case <-time.After(5 * time.Second):
		}
		s.mu.Lock()
		tracked := map[int]bool{}
		for _, p := range s.running {
			tracked[p.Pid] = true
		}
		s.mu.Unlock()
		for _, p := range listProcesses() {
			if p.ppid == self && p.state == 'Z' && !tracked[p.pid] {
				_, _ = syscall.Wait4(p.pid, nil, syscall.WNOHANG, nil)
			}
		}
	}
}

type procInfo struct {
	pid, ppid, sid int
	state          byte
}

func listProcesses() []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces: read after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 4 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		sid, _ := strconv.Atoi(fields[3])
		out = append(out, procInfo{pid: pid, ppid: ppid, sid: sid, state: fields[0][0]})
	}
	return out
}

// watchProcess returns when the process pid has ended (or does not exist).
func watchProcess(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}
	if errors.Is(err, unix.ESRCH) {
		return
	}
	for syscall.Kill(pid, 0) == nil { // no pidfd (old kernel): poll
		time.Sleep(500 * time.Millisecond)
	}
}

// runningSupervisor says whether DIR's supervisor is alive, checking that the
// pid in DIR/supervisor.pid is still ours (pids are reused).
func runningSupervisor(dir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	args := strings.Split(string(cmdline), "\x00")
	return pid, len(args) > 2 && args[1] == "supervise" && args[2] == "--dir="+dir
}
