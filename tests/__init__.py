"""The test suite (a regular package, so an installed distribution shipping a top-level ``tests`` package cannot shadow it)."""
