"""auditor: NIST SP 800-190 as code for hosts, Docker daemons and Kubernetes clusters."""

__version__ = "0.1.0"
