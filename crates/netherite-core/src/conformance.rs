//! The machinery shared by the conformance suites of [`crate::device`] and [`crate::transport`].
//!
//! A suite is a list of named checks. Each check gets a fresh fixture from the adapter, runs
//! under a time limit, and ends passed, skipped (the adapter cannot simulate what it needs) or
//! failed with a message. The suite runs every check even after a failure, so one run shows
//! everything an adapter gets wrong; the [`SuiteReport`] lists them all.
//!
//! Suites and stories that need a real service (a broker, a storage emulator) find it with
//! [`outside_service`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::Error;

/// The outside service (a broker, a storage emulator) that the environment variable
/// `variable` names for the tests of `what`. Without it the tests are skipped and say so,
/// except in CI (`CI=true`), where a missing service is a failure: this panics.
pub fn outside_service(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{variable} is not set: CI must run {what}")
        }
        _ => {
            eprintln!("{variable} is not set: {what} skipped");
            None
        }
    }
}

/// How long one check may take before it counts as failed (a hung adapter must not hang CI).
pub const CHECK_TIME_MAX: Duration = Duration::from_secs(30);

/// What a check that did not fail found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every rule the check covers held.
    Passed,
    /// The adapter cannot simulate what the check needs; the reason says what.
    Skipped(&'static str),
}

/// The result of one check: a verdict, or what went wrong.
pub type CheckResult = Result<Verdict, String>;

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

/// One named check over a fixture of type `F`.
pub struct Check<F: ?Sized> {
    /// The check's name, as it appears in reports.
    pub name: &'static str,
    /// Runs the check against a fresh fixture.
    pub run: for<'a> fn(&'a F) -> CheckFuture<'a>,
}

/// The outcome of one check of a suite.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// The check's name.
    pub name: &'static str,
    /// What it found.
    pub result: CheckResult,
}

/// The outcomes of every check of a suite, in the order they ran.
#[derive(Clone, Debug)]
pub struct SuiteReport {
    /// The suite's name.
    pub suite: &'static str,
    /// One outcome per check.
    pub outcomes: Vec<CheckOutcome>,
}

impl SuiteReport {
    /// The names of the checks that failed.
    pub fn failed(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| o.result.is_err())
            .map(|o| o.name)
            .collect()
    }

    /// The names of the checks that were skipped.
    pub fn skipped(&self) -> Vec<&'static str> {
        let skipped = |o: &&CheckOutcome| matches!(o.result, Ok(Verdict::Skipped(_)));
        self.outcomes
            .iter()
            .filter(skipped)
            .map(|o| o.name)
            .collect()
    }

    /// This report, or a panic listing every failed check (what an adapter's test wants).
    pub fn assert_passed(self) -> SuiteReport {
        assert!(self.failed().is_empty(), "{self}");
        self
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failed().len();
        writeln!(
            f,
            "{} conformance: {} checks, {failed} failed",
            self.suite,
            self.outcomes.len()
        )?;
        for outcome in &self.outcomes {
            match &outcome.result {
                Ok(Verdict::Passed) => writeln!(f, "  ok      {}", outcome.name)?,
                Ok(Verdict::Skipped(why)) => writeln!(f, "  skipped {}: {why}", outcome.name)?,
                Err(what) => writeln!(f, "  FAILED  {}: {what}", outcome.name)?,
            }
        }
        Ok(())
    }
}

/// Runs every check of `checks` against its own fixture from `make`, each under
/// [`CHECK_TIME_MAX`]: the runner of every suite, the core's and the backends' own.
pub async fn run_checks<F: ?Sized, M>(
    suite: &'static str,
    checks: &[Check<F>],
    make: M,
) -> SuiteReport
where
    M: Fn() -> Box<F>,
{
    let mut outcomes = Vec::with_capacity(checks.len());
    for check in checks {
        let fixture = make();
        let result = match tokio::time::timeout(CHECK_TIME_MAX, (check.run)(&fixture)).await {
            Ok(result) => result,
            Err(_) => Err(format!("did not finish within {CHECK_TIME_MAX:?}")),
        };
        match &result {
            Err(what) => {
                tracing::warn!(suite, check = check.name, what, "conformance check failed")
            }
            Ok(_) => tracing::debug!(suite, check = check.name, "conformance check done"),
        }
        outcomes.push(CheckOutcome {
            name: check.name,
            result,
        });
    }
    SuiteReport { suite, outcomes }
}

/// Fails a check with `what` unless `condition` holds.
pub(crate) fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

/// Fails a check unless `actual == expected`, saying what was compared.
pub(crate) fn ensure_eq<T>(actual: T, expected: T, what: &str) -> Result<(), String>
where
    T: PartialEq + fmt::Debug,
{
    ensure(actual == expected, || {
        format!("{what}: expected {expected:?}, got {actual:?}")
    })
}

/// Turns a contract error into a check failure that says which step failed.
pub trait Step<T> {
    /// The value, or a failure naming `step` and the error.
    fn step(self, step: &str) -> Result<T, String>;
}

impl<T> Step<T> for Result<T, Error> {
    fn step(self, step: &str) -> Result<T, String> {
        self.map_err(|e| format!("{step} failed: {e}"))
    }
}

/// Fails a check unless `result` is an error that `expected` accepts.
pub(crate) fn ensure_error<T: fmt::Debug>(
    result: Result<T, Error>,
    expected: fn(&Error) -> bool,
    what: &str,
) -> Result<(), String> {
    match result {
        Err(e) if expected(&e) => Ok(()),
        Err(e) => Err(format!("{what}: wrong error {e:?}")),
        Ok(v) => Err(format!("{what}: succeeded with {v:?} but must fail")),
    }
}
