"""HTTP plumbing shared by every router: problems, middleware, models, cursors, auth."""
