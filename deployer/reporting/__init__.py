"""What a run shows and leaves behind: the display (live on a TTY, one line per state change in CI), the
JSON report, JUnit XML, and the redaction of secrets every one of them goes through."""
