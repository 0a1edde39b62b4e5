package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestListProcessesSeesOurChild(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	for _, p := range listProcesses() {
		if p.pid == child.Process.Pid {
			if p.ppid != os.Getpid() {
				t.Errorf("ppid %d, want %d", p.ppid, os.Getpid())
			}
			return
		}
	}
	t.Errorf("pid %d not listed", child.Process.Pid)
}

func TestWatchProcessReturnsWhenItEnds(t *testing.T) {
	child := exec.Command("sleep", "0.2")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = child.Wait() }()
	done := make(chan struct{})
	go func() { watchProcess(child.Process.Pid); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("watchProcess did not return after the process ended")
	}
}
