"""Delivery: put a finished package on a target (a local folder or an SFTP server) atomically."""
