"""The example flow of Prefect's KubernetesJobEnvironment documentation, with kjenv: run it with

    kjenv run examples/flow.py --local

(``--local`` starts the embedded local cluster; on a real cluster build an image that holds the
flow and pass ``--image`` and ``--flow-file-path``.)
"""

from pathlib import Path

from prefect import Flow, task

from kjenv import KubernetesJobEnvironment


@task
def get_value():
    return "Example!"


@task
def output_value(value):
    print(value)


flow = Flow(
    "Kubernetes Job Environment w/ Resource Requests & Limits",
    environment=KubernetesJobEnvironment(
        job_spec_file=str(Path(__file__).with_name("job_spec.yaml")),
    ),
)

# set task dependencies using imperative API
output_value.set_upstream(get_value, flow=flow)
output_value.bind(value=get_value, flow=flow)
