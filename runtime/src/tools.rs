//! The agent's tools, run in the workspace: `bash` (timeout, output captured, the whole process
//! group killed on timeout, cancel or deadline), `read_file`, `write_file`, `edit_file` (one exact
//! string replacement) and `ask` (handled by the turn, defined here).
//!
//! A tool failure is a tool result (`is_error`), never an error of the turn. This module must not
//! hand the runtime's own configuration (`SEALPOD_*` variables) to commands it runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// Most bytes of a tool result sent back to the model (head and tail kept); the transcript
/// keeps the whole output.
pub const MODEL_RESULT_LIMIT: usize = 100 * 1024;
/// Most bytes of output quoted in an `exec.completed` summary.
pub const SUMMARY_LIMIT: usize = 2 * 1024;

/// The tool definitions sent with every model call.
pub fn definitions() -> Value {
    json!([
        {"name": "bash", "description": "Run a bash command in the workspace directory. Returns stdout and stderr.",
         "input_schema": {"type": "object", "properties": {
            "command": {"type": "string", "description": "The command line."},
            "timeout_seconds": {"type": "integer", "description": "Kill the command after this many seconds."}},
          "required": ["command"]}},
        {"name": "read_file", "description": "Read a text file (path relative to the workspace).",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
        {"name": "write_file", "description": "Create or overwrite a text file (path relative to the workspace).",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
          "required": ["path", "content"]}},
        {"name": "edit_file", "description": "Replace the one exact occurrence of old_str with new_str in a file.",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "old_str": {"type": "string"},
          "new_str": {"type": "string"}}, "required": ["path", "old_str", "new_str"]}},
        {"name": "ask", "description": "Ask the user a question and end the turn until they answer.",
         "input_schema": {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}}
    ])
}

/// What a tool produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The whole result text.
    pub content: String,
    /// True when the tool failed.
    pub is_error: bool,
    /// Exit code (0 success; the command's code for `bash`; -1 when killed).
    pub exit_code: i32,
}

impl ToolOutput {
    fn ok(content: impl Into<String>) -> ToolOutput {
        ToolOutput {
            content: content.into(),
            is_error: false,
            exit_code: 0,
        }
    }

    fn err(content: impl Into<String>) -> ToolOutput {
        ToolOutput {
            content: content.into(),
            is_error: true,
            exit_code: 1,
        }
    }
}

fn str_arg<'a>(input: &'a Value, key: &str) -> Result<&'a str, ToolOutput> {
    input[key]
        .as_str()
        .ok_or_else(|| ToolOutput::err(format!("missing string argument `{key}`")))
}

fn resolve(workspace: &Path, path: &str) -> PathBuf {
    workspace.join(path)
}

/// Cuts `text` to at most `limit` bytes, keeping its head and tail on char boundaries.
pub fn head_tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let half = limit / 2;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}\n[… {} bytes omitted …]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// A short description of a call, for `tool.call` (`args_summary`) and `exec.completed`
/// (`command`).
pub fn summarize_args(name: &str, input: &Value) -> String {
    let text = match name {
        "bash" => input["command"].as_str().unwrap_or_default().to_owned(),
        "write_file" => format!(
            "{} ({} bytes)",
            input["path"].as_str().unwrap_or_default(),
            input["content"].as_str().map_or(0, str::len)
        ),
        "ask" => input["question"].as_str().unwrap_or_default().to_owned(),
        _ => input["path"].as_str().unwrap_or_default().to_owned(),
    };
    head_tail(&text, 400)
}

/// Runs one tool (not `ask`).
pub async fn run(
    name: &str,
    input: &Value,
    workspace: &Path,
    bash_timeout: Duration,
) -> ToolOutput {
    let result = match name {
        "bash" => return bash(input, workspace, bash_timeout).await,
        "read_file" => read_file(input, workspace).await,
        "write_file" => write_file(input, workspace).await,
        "edit_file" => edit_file(input, workspace).await,
        other => Err(ToolOutput::err(format!("unknown tool `{other}`"))),
    };
    result.unwrap_or_else(|e| e)
}

async fn read_file(input: &Value, workspace: &Path) -> Result<ToolOutput, ToolOutput> {
    let path = str_arg(input, "path")?;
    tokio::fs::read_to_string(resolve(workspace, path))
        .await
        .map(ToolOutput::ok)
        .map_err(|e| ToolOutput::err(format!("cannot read {path}: {e}")))
}

async fn write_file(input: &Value, workspace: &Path) -> Result<ToolOutput, ToolOutput> {
    let path = str_arg(input, "path")?;
    let content = str_arg(input, "content")?;
    let full = resolve(workspace, path);
    if let Some(parent) = full.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| ToolOutput::err(format!("cannot create {}: {e}", parent.display())))?;
    }
    tokio::fs::write(&full, content)
        .await
        .map_err(|e| ToolOutput::err(format!("cannot write {path}: {e}")))?;
    Ok(ToolOutput::ok(format!(
        "wrote {} bytes to {path}",
        content.len()
    )))
}

async fn edit_file(input: &Value, workspace: &Path) -> Result<ToolOutput, ToolOutput> {
    let path = str_arg(input, "path")?;
    let old = str_arg(input, "old_str")?;
    let new = str_arg(input, "new_str")?;
    if old.is_empty() {
        return Err(ToolOutput::err("old_str must not be empty"));
    }
    let full = resolve(workspace, path);
    let text = tokio::fs::read_to_string(&full)
        .await
        .map_err(|e| ToolOutput::err(format!("cannot read {path}: {e}")))?;
    match text.matches(old).count() {
        1 => {}
        0 => return Err(ToolOutput::err(format!("old_str not found in {path}"))),
        n => {
            return Err(ToolOutput::err(format!(
                "old_str occurs {n} times in {path}; it must occur exactly once"
            )));
        }
    }
    tokio::fs::write(&full, text.replacen(old, new, 1))
        .await
        .map_err(|e| ToolOutput::err(format!("cannot write {path}: {e}")))?;
    Ok(ToolOutput::ok(format!("edited {path}")))
}

/// Kills a process group when dropped (a cancelled or timed-out command, and everything it
/// started), unless disarmed.
struct GroupKiller {
    pgid: Option<u32>,
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // `kill` the whole group: dropping the child would only kill bash, leaving e.g. a
            // `sleep` it started running past the deadline.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn bash(input: &Value, workspace: &Path, default_timeout: Duration) -> ToolOutput {
    let command = match str_arg(input, "command") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let timeout = input["timeout_seconds"]
        .as_u64()
        .map_or(default_timeout, Duration::from_secs);
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(command)
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SEALPOD_") {
            cmd.env_remove(name);
        }
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ToolOutput::err(format!("cannot start bash: {e}")),
    };
    let mut killer = GroupKiller { pgid: child.id() };
    let output = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let output = match output {
        Err(_) => {
            drop(killer);
            return ToolOutput {
                content: format!(
                    "command timed out after {}s and was killed",
                    timeout.as_secs()
                ),
                is_error: true,
                exit_code: -1,
            };
        }
        Ok(Err(e)) => return ToolOutput::err(format!("bash failed: {e}")),
        Ok(Ok(o)) => o,
    };
    // The command ended on its own; its group may still hold background children, which are
    // killed as well so nothing outlives the call.
    drop(std::mem::replace(&mut killer, GroupKiller { pgid: None }));
    let mut content = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.stderr.is_empty() {
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    let exit_code = output.status.code().unwrap_or(-1);
    ToolOutput {
        content,
        is_error: exit_code != 0,
        exit_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_tools_write_read_and_edit_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path();
        let t = Duration::from_secs(5);
        let w = run(
            "write_file",
            &json!({"path": "a/b.txt", "content": "x y x"}),
            ws,
            t,
        )
        .await;
        assert!(!w.is_error, "{w:?}");
        let r = run("read_file", &json!({"path": "a/b.txt"}), ws, t).await;
        assert_eq!(r.content, "x y x");
        let twice = run(
            "edit_file",
            &json!({"path": "a/b.txt", "old_str": "x", "new_str": "z"}),
            ws,
            t,
        )
        .await;
        assert!(
            twice.is_error && twice.content.contains("2 times"),
            "{twice:?}"
        );
        let once = run(
            "edit_file",
            &json!({"path": "a/b.txt", "old_str": "y", "new_str": "q"}),
            ws,
            t,
        )
        .await;
        assert!(!once.is_error);
        assert_eq!(
            std::fs::read_to_string(ws.join("a/b.txt")).expect("read"),
            "x q x"
        );
        let missing = run("read_file", &json!({"path": "nope"}), ws, t).await;
        assert!(missing.is_error);
    }

    #[tokio::test]
    async fn bash_captures_output_and_exit_code_and_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path();
        let out = run(
            "bash",
            &json!({"command": "pwd; echo err >&2; exit 3"}),
            ws,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(out.exit_code, 3);
        assert!(out.content.contains(&ws.display().to_string()) && out.content.contains("err"));
        let slow = run(
            "bash",
            &json!({"command": "sleep 30 & echo $! > pid; wait"}),
            ws,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(slow.exit_code, -1);
        let pid = std::fs::read_to_string(ws.join("pid")).expect("pid");
        // The background sleep was in the group and is gone (or a zombie awaiting its reaper).
        let dead = || {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .next();
            matches!(state, None | Some("Z" | "X"))
        };
        for _ in 0..50 {
            if dead() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(dead(), "the group's children were killed");
    }

    #[test]
    fn head_tail_keeps_both_ends() {
        let text = "a".repeat(100) + &"b".repeat(100);
        let cut = head_tail(&text, 20);
        assert!(cut.starts_with("aaaaaaaaaa") && cut.ends_with("bbbbbbbbbb"));
        assert!(cut.contains("180 bytes omitted"));
    }
}
