"""Attack adapters, one per file, registered under the `distill_bench.attacks` entry-point group."""
