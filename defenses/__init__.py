"""Defense plugins, one per file. Each is registered under the `distill_bench.defenses` entry-point group."""
