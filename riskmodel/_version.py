"""The package version: one owner, read by the artifact, the report and the Spark executors."""

VERSION = "0.1.0"
