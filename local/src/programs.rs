//! The host programs local mode runs, looked for as `scripts/setup-local` looks for them: on
//! `PATH`, then in the system directories a normal user's `PATH` may lack.

use std::path::PathBuf;

/// Those of `programs` that are not installed.
pub fn missing<'a>(programs: &[&'a str]) -> Vec<&'a str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .collect();
    programs
        .iter()
        .copied()
        .filter(|program| !dirs.iter().any(|d| d.join(program).is_file()))
        .collect()
}
