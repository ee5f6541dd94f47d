"""Where the nightly data comes from: the source kinds, their snapshots, and the SIS converters."""
