//! Test harness shared by the project's tests and by other teams' CI.
