"""The reconciler: converges bot workloads to each config's desired state (level-triggered)."""
