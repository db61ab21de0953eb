"""Start and stop real servers (sshd, dockerd, PostgreSQL) for the integration tests.

Plain helpers, no pytest: `tests/conftest.py` turns them into fixtures. Every server
listens on 127.0.0.1 or a unix socket only, every wait has a timeout, every failure
message carries the tail of the server's log, and whatever was started is stopped by PID.
"""
