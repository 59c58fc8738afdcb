"""Human review: a queue on PostgreSQL (SQLite embedded), a web UI for reviewers and leads,
verdicts that become final decisions and calibration feedback."""
