"""One module per workload: each turns a Bench into a Report."""
