// kjenv-control-plane: a real single-node Kubernetes control plane on 127.0.0.1
// for kjenv's tests. One binary; each component runs as a re-exec of it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kjenv-control-plane up|supervise|apiserver|controller-manager|scheduler|etcd ...")
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	switch name {
	case "up":
		os.Exit(runUp(args))
	case "supervise":
		os.Exit(runSupervise(args))
	}
	if run, ok := components[name]; ok {
		os.Exit(run(args))
	}
	fmt.Fprintf(os.Stderr, "kjenv-control-plane: unknown command %q\n", name)
	os.Exit(2)
}
