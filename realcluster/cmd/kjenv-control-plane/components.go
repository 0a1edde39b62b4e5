// The control-plane components themselves, each run as the upstream command
// would run it: kube-apiserver, kube-controller-manager, kube-scheduler, etcd.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones, as the upstream mains do

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// runUpstream runs one upstream cobra command with the remaining arguments,
// in a process of its own (each component keeps its global flags and state).
func runUpstream(newCommand func() *cobra.Command, args []string) int {
	command := newCommand()
	command.SetArgs(args)
	os.Args = append([]string{command.Name()}, args...)
	return cli.Run(command)
}

var components = map[string]func(args []string) int{
	"apiserver": func(args []string) int { return runUpstream(apiserver.NewAPIServerCommand, args) },
	"controller-manager": func(args []string) int {
		return runUpstream(controllermanager.NewControllerManagerCommand, args)
	},
	"scheduler": func(args []string) int {
		return runUpstream(func() *cobra.Command { return scheduler.NewSchedulerCommand() }, args)
	},
	"etcd": runEtcd,
}
