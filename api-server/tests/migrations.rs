//! The SQLite and PostgreSQL migrations describe the same schema: the same files, and in each the
//! same statements once the two dialects' column types are written one way (`BIGINT` and
//! `INTEGER`, `BIGSERIAL PRIMARY KEY` and `INTEGER PRIMARY KEY AUTOINCREMENT`, …) and comments
//! and spacing are dropped. A column or index added to one store and not the other fails here.

use std::path::{Path, PathBuf};

fn migrations(dialect: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect)
}

fn files(dialect: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(migrations(dialect))
        .expect("migrations directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The statements of a migration, comments and spacing dropped, each dialect's types in one
/// spelling.
fn normalized(dialect: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(migrations(dialect).join(name)).expect("migration");
    let without_comments: String = text
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    let mut spaced = without_comments
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for (from, to) in [
        ("INTEGER PRIMARY KEY AUTOINCREMENT", "<serial key>"),
        ("BIGSERIAL PRIMARY KEY", "<serial key>"),
        ("BIGINT", "INTEGER"),
        ("BYTEA", "BLOB"),
        ("DOUBLE PRECISION", "REAL"),
    ] {
        spaced = spaced.replace(from, to);
    }
    spaced
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn sqlite_and_postgres_migrations_match_statement_by_statement() {
    let names = files("sqlite");
    assert_eq!(names, files("postgres"), "the same migration files");
    assert!(!names.is_empty());
    for name in names {
        let (sqlite, postgres) = (normalized("sqlite", &name), normalized("postgres", &name));
        assert_eq!(sqlite.len(), postgres.len(), "{name}: statement count");
        for (a, b) in sqlite.iter().zip(&postgres) {
            assert_eq!(a, b, "{name}: the stores differ");
        }
    }
}
