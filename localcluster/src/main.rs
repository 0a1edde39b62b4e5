//! `localcluster`: run the local Kubernetes API emulator in the foreground.
fn main() {}
