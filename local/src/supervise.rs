//! The children of `up`, kept running as a Deployment keeps its pods: a child that exits on its
//! own after it was ready is started again after a delay (1 s, doubling up to 30 s, and back to
//! 1 s once it has run for a minute), each time with a warning naming its log.

use std::path::PathBuf;
use std::time::Duration;

use sealpod_controlplane::children::{self, Child, ChildError, Spawn};
use tokio::time::Instant;

const FIRST_DELAY: Duration = Duration::from_secs(1);
const LONGEST_DELAY: Duration = Duration::from_secs(30);
/// A child that ran this long before it exited is restarted after the first delay again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How to start a child, kept to start it again.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Its name in messages and of its log.
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// How to get the program when it is missing.
    pub hint: &'static str,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its extra environment.
    pub env: Vec<(&'static str, String)>,
    /// The file its output is appended to.
    pub log: PathBuf,
}

impl Recipe {
    fn spawn(&self) -> Result<Child, ChildError> {
        children::spawn(Spawn {
            name: &self.name,
            program: &self.program,
            hint: self.hint,
            args: &self.args,
            env: &self.env,
            log: &self.log,
        })
    }
}

/// A child `up` keeps running.
#[derive(Debug)]
pub struct Supervised {
    recipe: Recipe,
    /// The running process; `None` between an exit and the restart.
    child: Option<Child>,
    started: Instant,
    delay: Duration,
    restart_at: Option<Instant>,
}

impl Supervised {
    /// Starts the child.
    pub fn spawn(recipe: Recipe) -> Result<Supervised, ChildError> {
        let child = recipe.spawn()?;
        Ok(Supervised {
            recipe,
            child: Some(child),
            started: Instant::now(),
            delay: FIRST_DELAY,
            restart_at: None,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.recipe.name
    }

    /// Waits until `ready()` holds (see [`Child::wait_ready`]).
    pub async fn wait_ready<F, Fut>(&mut self, secs: u64, ready: F) -> Result<(), ChildError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        match &mut self.child {
            Some(child) => child.wait_ready(secs, ready).await,
            None => Ok(()),
        }
    }

    /// Notices an exit and schedules the restart, or restarts when it is due. Fails only when
    /// the program can no longer be started at all.
    pub fn tend(&mut self) -> Result<(), ChildError> {
        let now = Instant::now();
        if let Some(child) = &mut self.child
            && let Some(status) = child.exited()
        {
            if now.duration_since(self.started) >= HEALTHY_RUN {
                self.delay = FIRST_DELAY;
            }
            tracing::warn!(
                child = %self.recipe.name,
                %status,
                restart_in_seconds = self.delay.as_secs(),
                log = %self.recipe.log.display(),
                "a child exited on its own; starting it again"
            );
            self.child = None;
            self.restart_at = Some(now + self.delay);
            self.delay = (self.delay * 2).min(LONGEST_DELAY);
        }
        if self.child.is_none() && self.restart_at.is_some_and(|at| now >= at) {
            self.child = Some(self.recipe.spawn()?);
            self.started = now;
            self.restart_at = None;
        }
        Ok(())
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub async fn stop(self, grace: Duration) {
        if let Some(child) = self.child {
            child.stop(grace).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_that_dies_is_started_again_after_a_delay() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let marks = dir.path().join("marks");
        let mut child = Supervised::spawn(Recipe {
            name: "marker".into(),
            program: "/bin/sh".into(),
            hint: "",
            args: vec![
                "-c".into(),
                format!("echo start >> {}; exit 3", marks.display()),
            ],
            env: vec![],
            log: dir.path().join("log"),
        })
        .expect("spawn");
        let starts = || {
            std::fs::read_to_string(&marks)
                .unwrap_or_default()
                .lines()
                .count()
        };
        // Exits at once; noticed, then started again once the first delay has passed.
        while child.restart_at.is_none() {
            child.tend().expect("tend");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(child.delay, FIRST_DELAY * 2, "the next delay doubles");
        while starts() < 2 {
            child.tend().expect("tend");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(child.child.is_some() || child.restart_at.is_some());
        child.stop(Duration::from_secs(1)).await;
    }
}
