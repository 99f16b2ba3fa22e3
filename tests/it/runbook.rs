//! Runbooks end to end through the real binary: a real valkey-server as the cache, the AWS
//! control plane against moto's SSM for locks, journals in a temporary state dir.

pub mod estate;
mod files;
mod locks;
mod protection;
mod resume;
mod roundtrip;
mod sandbox;
mod steps;
