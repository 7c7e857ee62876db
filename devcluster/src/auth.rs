//! Authentication: static bearer tokens, one user per token, read from a kube-apiserver style
//! token file (`token,user,uid,"group1,group2"`). Anonymous requests are refused. There is no
//! authorization: every authenticated user may do everything (no RBAC emulation). Tokens are
//! never logged.

use crate::error::Error;
use std::collections::HashMap;
use std::path::Path;

/// token → user.
#[derive(Clone, Default)]
pub(crate) struct Tokens(HashMap<String, String>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&String> = self.0.values().collect();
        f.debug_struct("Tokens").field("users", &users).finish()
    }
}

impl Tokens {
    pub(crate) fn new(pairs: &[(String, String)]) -> Self {
        Self(pairs.iter().cloned().collect())
    }

    /// The user a bearer token belongs to.
    pub(crate) fn user(&self, authorization: Option<&str>) -> Option<&str> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.0.get(token).map(String::as_str)
    }

    /// Every user with a token.
    pub(crate) fn users(&self) -> Vec<String> {
        self.0.values().cloned().collect()
    }

    /// The token of a user (the first one found).
    pub(crate) fn token_of(&self, user: &str) -> Option<&str> {
        let mut matches: Vec<&String> = self
            .0
            .iter()
            .filter(|(_, u)| *u == user)
            .map(|(t, _)| t)
            .collect();
        matches.sort();
        matches.first().map(|t| t.as_str())
    }
}

/// Parses a static token file: one `token,user[,uid[,"groups"]]` per line; `#` comments and
/// blank lines are skipped.
pub fn read_token_file(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        what: "reading token file",
        path: path.display().to_string(),
        source,
    })?;
    parse_tokens(&text).map_err(|message| Error::Parse {
        path: path.display().to_string(),
        message,
    })
}

pub(crate) fn parse_tokens(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ',');
        let token = parts.next().unwrap_or("").trim();
        let user = parts.next().unwrap_or("").trim().trim_matches('"');
        if token.is_empty() || user.is_empty() {
            return Err(format!("line {}: expected token,user", i + 1));
        }
        out.push((token.to_string(), user.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines() {
        let pairs =
            parse_tokens("# c\nt1,admin,1,\"system:masters\"\n\nt2,operator\n").expect("parses");
        assert_eq!(
            pairs,
            vec![
                ("t1".into(), "admin".into()),
                ("t2".into(), "operator".into())
            ]
        );
        let t = Tokens::new(&pairs);
        assert_eq!(t.user(Some("Bearer t2")), Some("operator"));
        assert_eq!(t.user(Some("Bearer nope")), None);
        assert_eq!(t.user(None), None);
        assert!(parse_tokens("onlytoken\n").is_err());
        assert!(!format!("{t:?}").contains("t1"));
    }
}
