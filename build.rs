//! Embeds the dashboard declarations (`dashboards/*.toml`) and the panel
//! queries (`sql/queries/panels/*.sql`) into the binary, listing whatever
//! files are there: adding a panel needs no Rust change, and a deployed
//! `headcount` carries the dashboards it was built with.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut code = String::new();
    for (name, dir, ext) in [("DASHBOARDS", "dashboards", "toml"), ("PANEL_QUERIES", "sql/queries/panels", "sql")] {
        let dir = Path::new(&root).join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> =
            std::fs::read_dir(&dir).map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == ext));
        files.sort();
        let _ = writeln!(code, "pub const {name}: &[(&str, &str)] = &[");
        for p in files {
            let file = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let _ = writeln!(code, "    ({file:?}, include_str!({:?})),", p.display().to_string());
        }
        let _ = writeln!(code, "];");
    }
    std::fs::write(Path::new(&out).join("embedded_panels.rs"), code).expect("write OUT_DIR/embedded_panels.rs");
}
