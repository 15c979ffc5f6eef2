//! REST integration tests: the real application on a random port, raw HTTP requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod files;
mod guest;
mod helpers;
mod hostile;
mod nodes;
mod public;
mod socket;
mod web;
