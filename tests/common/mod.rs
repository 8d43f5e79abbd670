//! Helpers shared by the integration tests (each test binary uses some).
#![allow(dead_code)]

pub mod system;
