from workloads.cli import run

run()
