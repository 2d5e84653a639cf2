from tests.runs.helpers import admin, api, reads_app, reads_db, reads_settings_overrides  # noqa: F401
