"""scimsync: keep Atlassian user directories in step with the company identity provider."""

__version__ = "0.1.0"
