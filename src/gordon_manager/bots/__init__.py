"""Bot configs: declarative CRUD, lifecycle actions (desired state only), audit, idempotent creates."""
