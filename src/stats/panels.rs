//! Panel declarations from `dashboards/*.toml` (to be implemented by the
//! stats engine).
