"""The application layer: wires a run (settings -> plan -> engine -> views and recorder) and
answers the CLI's questions (check an endpoint, list history, compute stats).

The CLI calls only this layer; it is the one place that knows every other package.
"""
