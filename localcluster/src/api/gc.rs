//! The garbage collector: ownerReferences, `orphan` and `foregroundDeletion` finalizers.

use std::sync::Arc;

use crate::Cluster;

/// Spawns the GC task.
pub fn spawn(_cluster: Arc<Cluster>) {}
