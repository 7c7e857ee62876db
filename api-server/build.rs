//! Embeds the console's files (`console/`): writes `$OUT_DIR/console_files.rs`, one
//! `(path, include_bytes!(…))` entry per file, sorted, so every file of the folder is served and
//! nothing else is. The console needs no build step of its own (plain ES modules).

use std::path::{Path, PathBuf};

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            collect(&path, root, out);
        } else {
            let relative = path.strip_prefix(root).expect("under the root");
            let name = relative
                .to_str()
                .expect("console file names are UTF-8")
                .replace('\\', "/");
            out.push((name, path));
        }
    }
}

fn main() {
    // Read when the script runs, not when it was compiled: one compiled script may serve two
    // checkouts sharing a target directory.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("console");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut code = String::from("&[\n");
    for (name, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("console_files.rs"), code).expect("writing console_files.rs");
}
