"""The prefix of every metric of the optimizer's own /metrics: the Go tool's README names them
`mimir_limit_optimizer_*`, and dashboards and alert rules written for it keep working."""

PREFIX = "mimir_limit_optimizer"
