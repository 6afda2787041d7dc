"""`cradle`: the composition root of an embedded deployment, the one place that knows every
service by name (cradle/services.py). Its command line is cradle/cli.py; this package file stays
empty so that a service process (`python -m cradle.serve`) does not import the command line."""
